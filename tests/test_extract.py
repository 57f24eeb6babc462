from bot.core.extract import AliasFinder, extract_entities, find_personal_numbers
from bot.core.normalize import normalize

NO_PLATFORMS = AliasFinder({})


def entities(text: str, platforms: AliasFinder = NO_PLATFORMS):
    return extract_entities(normalize(text), platforms)


def test_sender_phones_urls_amounts_dates():
    e = entities(
        "【招联金融】您尾号1234的借款应还1,560.32元，请于2026年12月5日前还款，详询95xxx或400-123-4567，"
        "催收员电话13812345678，退订回T。查看 https://t.cn/AbC12 或 wld-pay.cc/x"
    )
    assert e.senders == ("招联金融",)
    assert "13812345678" in e.phones and "400-123-4567" in e.phones
    assert "1,560.32元" in e.amounts
    assert "2026年12月5日" in e.dates
    assert "https://t.cn/abc12" in e.urls and "wld-pay.cc/x" in e.urls


def test_case_numbers_court_and_arbitration():
    e = entities("您好，（2026）京0105民初23145号案件已立案；另(2025)深仲案字第1234号仲裁案件已受理。")
    assert e.case_numbers == ("(2026)京0105民初23145号", "(2025)深仲案字第1234号")
    # A case serial number is not a service number.
    assert not [p for p in e.phones if p.startswith("12")]


def test_service_numbers_are_found_but_amounts_are_not_phones():
    e = entities("请致电12368核实，或拨打95188。欠款12500元。")
    assert "12368" in e.phones and "95188" in e.phones
    assert "12500" not in e.phones


def test_id_and_card_numbers_are_counted_not_listed():
    e = entities("身份证110105199003071234，卡号6222 0212 3456 7890 123，另一张6217003214580098")
    assert e.id_numbers == 1
    assert e.card_numbers == 2
    assert not any("6222" in v for v in e.phones + e.amounts)


def test_id_number_with_x_and_full_width_digits():
    spans = find_personal_numbers(normalize("身份证号：１１０１０５１９９００３０７１２３Ｘ").text)
    assert [s.kind for s in spans] == ["id_number"]


def test_platform_aliases():
    finder = AliasFinder({"花呗": "huabei", "蚂蚁花呗": "huabei", "借呗": "jiebei"})
    assert entities("你的螞蟻花唄和借呗都逾期了", finder).platforms == ("huabei", "jiebei")
