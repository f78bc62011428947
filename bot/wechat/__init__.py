"""The WeChat official account channel (issue 11). Engineer D2 owns this file: the inbound side
and the public surface are defined there; the outbound modules export their own names:

    _api      WeChatApi (the async client), its error tree, fetch_stable_token, api_root
    _token    TokenStore (one access token for every replica)
    _media    fit_video, fit_image, thumbnail_jpeg (WeChat's media limits)
    _peers    user_wrote (the inbound side calls it per message), take_slot, hold
    _channel  WeChatChannel (send/edit within the customer-service budget; passive sink)
    _tables   wechat_tokens, wechat_peers
"""
