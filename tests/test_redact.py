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
