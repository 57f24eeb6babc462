"""催收短信鉴别助手 Collection-SMS Guard."""

__version__ = "0.1.0"
