from wallet import Wallet


async def test_grant_then_balance(wallet: Wallet) -> None:
    uid = await wallet.open_account("telegram", "1")
    await wallet.grant(uid, 5, source="test", key="k")
    assert (await wallet.balance(uid)).available == 5
