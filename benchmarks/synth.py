"""Synthetic SMS for load measurements (throughput, the 200 KB message).

Written here from templates for all six verdicts, with made-up platforms, amounts, dates and numbers. They
are load, not labelled data: no accuracy figure is computed on them, and no evaluation row is copied here.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

TEMPLATES = [
    # reminder
    "【{platform}】尊敬的用户，您本期账单{amount}元将于{date}到期，请及时登录{platform}App还款，如已还款请忽略。",
    "【{platform}】您的借款已逾期{days}天，应还{amount}元，请尽快通过官方App还款，以免影响您的信用记录。",
    "【{bank}】您尾号{last4}的信用卡本期应还{amount}元，最后还款日{date}，请按时还款。",
    # pressure
    "【{platform}】您的欠款{amount}元已逾期{days}天，我司将委托第三方机构上门核实您的情况，请于{date}前处理。",
    "{platform}提醒：您的逾期账户已移交法务部门，如仍不处理将依法提起诉讼，由此产生的一切后果自负。",
    "您在{platform}的借款严重逾期，我方将于近期安排外访人员前往您的户籍地及工作单位走访。",
    "最后通知：你的{platform}欠款{amount}元逾期未还，已上报征信系统，{date}前不还款将启动法律程序。",
    # illegal collection
    "{name}你欠{platform}的钱再不还，我们就把你的事发给你通讯录里所有人，让亲戚朋友都知道你是老赖！",
    "已联系你单位领导和你家人，今天不还款明天就到你公司门口拉横幅，你自己看着办。",
    "你已涉嫌恶意透支和诈骗，我司已向当地公安机关报案，警察会直接去你家抓人。",
    "老赖，别以为躲得掉，你孩子在哪个学校我们都知道，后果你自己掂量。",
    # legal notice
    "【{court}】{name}：你与{platform}借款合同纠纷一案，案号（{year}）京0105民初{n}号，已立案受理，请登录人民法院在线服务平台查看材料，或拨打12368核实。",
    "【{court}】诉前调解通知：{platform}申请与您就借款合同纠纷进行诉前调解，调解员将与您联系，详情可通过12368查询。",
    "【{city}仲裁委员会】您与{platform}的借款合同纠纷仲裁案已受理，案号{city}仲字〔{year}〕第{n}号，请按时参加开庭。",
    # scam
    "【{platform}】您的账户涉嫌违规，需缴纳{amount}元保证金解冻，请转入指定账户{card}，否则将影响征信。",
    "您好，我是{platform}客服，您开通的校园贷未注销，会影响征信，请下载会议软件配合操作注销。",
    "专业征信修复，逾期记录洗白，黑名单也能下款，详询微信{wechat}。",
    "【{court}】你有一张传票未领取，案件涉及经济纠纷，请立即将欠款转入安全账户{card}，逾期将被强制执行。",
    "你的{platform}账户放款失败，因卡号填写错误资金已冻结，需支付{amount}元解冻费后重新放款。",
    "{platform}减免通知：现在还款可打五折，请将{amount}元转到业务员个人账户{card}，到账即结清。",
    # unrelated
    "【{courier}】您的快递已到{place}，取件码{code}，请及时领取。",
    "您的验证码为{code}，5分钟内有效，请勿告知他人。",
    "今晚加班，晚饭不用等我了，冰箱里有菜。",
    "【{shop}】会员日全场满200减30，回复TD退订。",
    "【{platform}】您的额度已提升至{amount}元，最快3分钟到账，回T退订。",
]

PLATFORMS = [
    "花呗",
    "借呗",
    "微粒贷",
    "京东白条",
    "美团月付",
    "招联金融",
    "分期乐",
    "安逸花",
    "度小满",
    "360借条",
]
BANKS = ["招商银行", "建设银行", "工商银行", "浦发银行", "中信银行"]
COURTS = ["北京市朝阳区人民法院", "杭州互联网法院", "广州市天河区人民法院", "上海市浦东新区人民法院"]
CITIES = ["广州", "深圳", "成都", "武汉"]
NAMES = ["张伟", "王芳", "李强", "刘洋", "陈静"]
COURIERS = ["顺丰速运", "中通快递", "菜鸟驿站"]
PLACES = ["小区东门驿站", "3号楼丰巢柜", "学校南门快递点"]
SHOPS = ["某某超市", "某某服饰", "某某咖啡"]


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        platform=rng.choice(PLATFORMS),
        bank=rng.choice(BANKS),
        court=rng.choice(COURTS),
        city=rng.choice(CITIES),
        name=rng.choice(NAMES),
        courier=rng.choice(COURIERS),
        place=rng.choice(PLACES),
        shop=rng.choice(SHOPS),
        amount=f"{rng.randint(200, 60000)}.{rng.randint(0, 99):02d}",
        days=rng.randint(1, 400),
        date=f"{rng.randint(1, 12)}月{rng.randint(1, 28)}日",
        year=rng.choice([2024, 2025, 2026]),
        n=rng.randint(100, 39999),
        last4=f"{rng.randint(0, 9999):04d}",
        code=f"{rng.randint(0, 999999):06d}",
        card="6222" + "".join(str(rng.randint(0, 9)) for _ in range(15)),
        wechat=f"xy{rng.randint(1000, 99999)}",
    )


def synthetic_sms(seed: int = 7) -> Iterator[str]:
    """An endless, reproducible stream of synthetic SMS, cycling through every template."""
    rng = random.Random(seed)
    while True:
        for template in TEMPLATES:
            yield _fill(template, rng)


def jsonl_texts(questions: list[str], count: int, seed: int = 7) -> list[str]:
    """``count`` texts: every fourth one a question (cycling through ``questions``), the rest synthetic SMS."""
    sms = synthetic_sms(seed)
    return [questions[(i // 4) % len(questions)] if i % 4 == 0 else next(sms) for i in range(count)]


def long_message(size_bytes: int, seed: int = 11) -> str:
    """One message of at least ``size_bytes`` UTF-8 bytes: synthetic SMS run together, as a pasted chat log."""
    parts: list[str] = []
    total = 0
    for text in synthetic_sms(seed):
        parts.append(text)
        total += len(text.encode("utf-8")) + 1
        if total >= size_bytes:
            break
    return "\n".join(parts)
