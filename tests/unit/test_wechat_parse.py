"""`webhooks.wechat.parse`: the same wechatpy message as `wechatpy.parse_message` for every
kind of body, its fast path taken only for a flat message that is no event."""

from __future__ import annotations

from xml.parsers.expat import ExpatError

import pytest
from wechatpy import parse_message
from wechatpy.messages import BaseMessage

from webhooks import wechat

HEAD = ("<ToUserName><![CDATA[gh_0123]]></ToUserName><FromUserName><![CDATA[oUser]]>"
        "</FromUserName><CreateTime>1764582000</CreateTime>")

FLAT = {
    "text in CDATA": f"<xml>{HEAD}<MsgType><![CDATA[text]]></MsgType>"
                     "<Content><![CDATA[ /balance ]]></Content><MsgId>123</MsgId></xml>",
    "text as plain": f"<xml>{HEAD}<MsgType>text</MsgType><Content>你好 &amp; 1 &lt; 2</Content>"
                     "<MsgId>124</MsgId></xml>",
    "empty content": f"<xml>{HEAD}<MsgType>text</MsgType><Content>  </Content>"
                     "<MsgId>125</MsgId></xml>",
    "image": f"<xml>{HEAD}<MsgType>image</MsgType><PicUrl>https://x.example/p.jpg</PicUrl>"
             "<MediaId>m1</MediaId><MsgId>126</MsgId></xml>",
    "voice": f"<xml>{HEAD}<MsgType>voice</MsgType><MediaId>m2</MediaId><Format>amr</Format>"
             "<MsgId>127</MsgId></xml>",
    "unknown kind": f"<xml>{HEAD}<MsgType>hologram</MsgType><MsgId>128</MsgId></xml>",
    "with a declaration": "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
                          f"<xml>{HEAD}<MsgType>text</MsgType><Content>hi</Content>"
                          "<MsgId>129</MsgId></xml>",
    "with whitespace": f"<xml>\n  {HEAD}\n  <MsgType>text</MsgType>\n  <Content>hi</Content>"
                       "\n  <MsgId>130</MsgId>\n</xml>",
}
OTHER = {
    "subscribe with a scene": f"<xml>{HEAD}<MsgType>event</MsgType><Event>subscribe</Event>"
                              "<EventKey>qrscene_42</EventKey></xml>",
    "menu click": f"<xml>{HEAD}<MsgType>event</MsgType><Event>CLICK</Event>"
                  "<EventKey>BALANCE</EventKey></xml>",
    "nested event": f"<xml>{HEAD}<MsgType>event</MsgType><Event>scancode_push</Event>"
                    "<EventKey>k</EventKey><ScanCodeInfo><ScanType>qrcode</ScanType>"
                    "<ScanResult>r</ScanResult></ScanCodeInfo></xml>",
    "repeated element": f"<xml>{HEAD}<MsgType>text</MsgType><Content>a</Content>"
                        "<Content>b</Content><MsgId>131</MsgId></xml>",
    "an attribute": f"<xml>{HEAD}<MsgType>text</MsgType><Content lang=\"en\">a</Content>"
                    "<MsgId>132</MsgId></xml>",
    "a comment": f"<xml>{HEAD}<!-- hi --><MsgType>text</MsgType><Content>a</Content>"
                 "<MsgId>133</MsgId></xml>",
}


REFUSED = (ExpatError, KeyError, ValueError)  # what xmltodict and wechatpy raise


def same(ours: BaseMessage, theirs: BaseMessage) -> None:
    assert type(ours) is type(theirs)
    assert ours._data == theirs._data


@pytest.mark.parametrize("xml", FLAT.values(), ids=FLAT.keys())
def test_a_flat_message_takes_the_fast_path_to_the_same_message(xml: str) -> None:
    assert wechat._flat_fields(xml) is not None
    same(wechat.parse(xml), parse_message(xml))


@pytest.mark.parametrize("xml", OTHER.values(), ids=OTHER.keys())
def test_events_and_anything_not_flat_go_through_wechatpy(xml: str) -> None:
    same(wechat.parse(xml), parse_message(xml))


def test_what_wechatpy_refuses_is_refused() -> None:
    bomb = ("<!DOCTYPE xml [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>"
            f"<xml>{HEAD}<MsgType>text</MsgType><Content>&b;</Content><MsgId>1</MsgId></xml>")
    for body in (bomb, "not xml", "<xml><MsgType>text", "<other><MsgType>text</MsgType></other>"):
        assert wechat._flat_fields(body) is None
        with pytest.raises(REFUSED):
            parse_message(body)
        with pytest.raises(REFUSED):
            wechat.parse(body)
