"""The safety check that runs before anything else: words of wanting to die or to hurt oneself."""

from __future__ import annotations

import re

# First-person despair; a collector's "你去死" is a threat handled by the signals, not this check.
_CRISIS = re.compile(
    r"不想活|活不下去|活不成|活着没意思|活着没意义|想死|想去死|寻死|自杀|轻生|自尽|了结自己|结束自己|结束生命|"
    r"一死了之|一了百了|死了算了|不如死了|去死算了|跳楼|跳河|跳桥|割腕|吃安眠药|喝农药|烧炭|活够了|撑不下去了|"
    r"没有活路|没活路|想解脱|离开这个世界|结束这一切|不想再撑|活着太累|"
    # Quieter despair that people in debt write before they say it outright.
    r"(活着|人生|活下去|生活|撑下去)[^，。！？]{0,4}(还有|有)?什么意义|不知道还有什么意义|没有(活下去的)?意义了|"
    r"看不到[^，。！？]{0,3}(希望|出路|活路|尽头)|没(有)?(一点)?希望了|走投无路|绝望|撑不住了|扛不住了|熬不下去|不想醒来|死了就好|死了就解脱|"
    r"写(好)?了?遗书|交代后事|安排后事|带着孩子一起走|对不起(爸妈|家人|父母)[^。！？]{0,6}(先走|走了)|"
    r"活着[^，。！？]{0,4}(就是|只是)?[^，。！？]{0,2}(拖累|累赘|多余)|(我|自己)(就是|只是|成了)[^，。！？]{0,4}(拖累|累赘)"
)


def detect_crisis(normalized_text: str) -> bool:
    return bool(_CRISIS.search(normalized_text))
