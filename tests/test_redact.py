import pytest

from bot.core.redact import redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("尊敬的张伟：您的借款已逾期", "张伟"),
        ("李娜女士您好，请尽快还款", "李娜"),
        ("王先生，您的账单已出", "王"),
        ("陈小明您好，您的快递到了", "陈小明"),
        ("借款人：赵强，身份证号110105199003071234", "110105199003071234"),
        ("身份证11010519900307123X已登记", "11010519900307123X"),
        ("卡号6222 0212 3456 7890 123", "6222 0212 3456 7890 123"),
        ("卡号６２１７００３２１４５８００９８", "６２１７００３２１４５８００９８"),
        ("催收员电话138-1234-5678", "138-1234-5678"),
        ("联系人手机+86 13912345678", "13912345678"),
        ("尊敬的客户王芳您好，您的账单已出", "王芳"),
        ("张三：您好，您的借款已逾期", "张三"),
        ("张三,你好", "张三"),
        ("您好王小明，您的借款已逾期", "王小明"),
        ("【XX金融】张伟，您的借款已逾期", "张伟"),
        ("尊敬的欧阳娜娜女士，请尽快还款", "欧阳娜娜"),
    ],
)
def test_personal_data_is_replaced(text, secret):
    out = redact(text)
    assert secret not in out
    assert "[" in out


def test_service_numbers_and_lenders_stay():
    text = "【工商银行】请致电95588或12368核实，或登录官方App。"
    assert redact(text) == text


def test_common_words_are_not_taken_for_names():
    text = "尊敬的客户您好，尊敬的用户：您的账单已出。"
    assert redact(text) == text


def test_redaction_keeps_the_rest_of_the_message():
    assert redact("尊敬的张伟：卡号6222021234567890123逾期") == "尊敬的[姓名]：卡号[银行卡号]逾期"


@pytest.mark.parametrize(
    "card",
    [
        "6222 0212 3456 7890 123",
        "6222-0212-3456-7890-12",
        "4512 3456 7890 1234",
        "６２２２　０２１２　３４５６　７８９０　１２３",
    ],
)
def test_the_short_last_group_of_a_grouped_card_number_goes_too(card):
    # 19-digit cards are printed 4-4-4-4-3; the last group once stayed behind ("[银行卡号] 123").
    assert redact(f"卡号{card}已逾期") == "卡号[银行卡号]已逾期"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("尊敬的张先生，您好", "尊敬的[姓名]先生，您好"),
        ("联系李女士处理", "联系[姓名]女士处理"),
        ("王先生您好", "[姓名]先生您好"),
        ("尊敬的客户：您好", "尊敬的客户：您好"),
        ("【XX银行】提醒：您的账单已出", "【XX银行】提醒：您的账单已出"),
        ("您好，您的借款已逾期", "您好，您的借款已逾期"),
    ],
)
def test_only_the_name_goes(text, expected):
    assert redact(text) == expected


def test_a_cut_quote_loses_its_partial_numbers():
    from bot.core.redact import redact_fragment

    assert redact_fragment("卡号62220212345") == "卡号[数字]"
    assert redact_fragment("案号(2026)京0105民初23145号") == "案号(2026)京0105民初23145号"
