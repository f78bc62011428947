"""The WeChat official account channel (issue 11). Engineer D2 owns this file: the inbound side
and the public surface are defined there; the outbound modules export their own names:

    _api     WeChatApi (the async client) and its error tree
    _token   TokenStore (one access token for every replica)
    _media   fit_video, fit_image, thumbnail_jpeg
    _tables  wechat_tokens, wechat_peers
"""
