"""mSupply Basic auth, hardware binding, route checks and the brute-force throttle."""

from tests.web.msupply.helpers import PASSWORD, assert_error, headers, make_site, route, sha


def test_v3_site_login_answers_the_site_fields(client, session, tenant):
    site = make_site(session, tenant=tenant, site_id=4, store_id="S4", name_id="N4", supplying_store_id="S1",
                     supplying_store_name_id="N1")
    resp = client.get("/sync/v3/site", headers=headers(site.name))
    assert resp.status_code == 200
    assert resp.get_json() == {"SiteID": 4, "ServerID": 1, "StoreID": "S4", "NameID": "N4",
                               "SupplyingStoreID": "S1", "SupplyingStoreNameID": "N1", "ServerVersion": 409}


def test_supplying_store_name_comes_from_the_stored_store_record(client, session, tenant):
    from tests.web.msupply.helpers import put
    put(session, tenant, [("store", "S1", {"ID": "S1", "name": "Central", "name_ID": "NCENTRAL"})])
    site = make_site(session, tenant=tenant, site_id=5, store_id="S5", supplying_store_id="S1")
    assert client.get("/sync/v2/site", headers=headers(site.name)).get_json()["SupplyingStoreNameID"] == "NCENTRAL"


def test_wrong_password_is_401_json(client, session, tenant):
    site = make_site(session, tenant=tenant, site_id=4)
    body = assert_error(client.get("/sync/v3/site", headers=headers(site.name, "wrong")), 401)
    assert "password" in body["error"]


def test_unknown_site_and_missing_auth_are_401_json(client):
    assert_error(client.get("/sync/v3/site", headers=headers("no-such-site")), 401)
    assert_error(client.get("/sync/v3/queued_records/count?from_site=4&to_site=1"), 401)


def test_v2_needs_the_sha256_but_v1_also_takes_the_plain_password(client, session, tenant):
    site = make_site(session, tenant=tenant, site_id=4)
    plain = headers(site.name, hashed=False)
    assert_error(client.get(f"/sync/v3/queued_records/count?{route(4)}", headers=plain), 401)
    assert client.get(f"/sync/v1/queued_records/count?{route(4)}", headers=plain).get_json() == {"NumRecords": 0}
    assert client.get(f"/sync/v1/queued_records/count?{route(4)}",
                      headers=headers(site.name)).get_json() == {"NumRecords": 0}


def test_hardware_id_is_bound_on_first_use_and_a_different_one_is_refused(client, session, tenant):
    site = make_site(session, tenant=tenant, site_id=4)
    assert client.get("/sync/v3/site", headers=headers(site.name, hardware="phone-A")).status_code == 200
    body = assert_error(client.get("/sync/v3/site", headers=headers(site.name, hardware="phone-B")), 409)
    assert body["error"].startswith("Site registration doesn't match.")
    assert_error(client.get("/sync/v3/site", headers=headers(site.name, hardware=None)), 409)
    assert client.get("/sync/v3/site", headers=headers(site.name, hardware="phone-A")).status_code == 200


def test_from_site_must_be_the_caller_and_to_site_this_server(client, session, tenant):
    site = make_site(session, tenant=tenant, site_id=4)
    make_site(session, tenant=tenant, site_id=5)
    h = headers(site.name)
    assert "from_site" in assert_error(client.get("/sync/v3/queued_records/count?from_site=5&to_site=1",
                                                  headers=h), 400)["error"]
    assert "to_site" in assert_error(client.get("/sync/v3/queued_records/count?from_site=4&to_site=2",
                                                headers=h), 400)["error"]
    assert_error(client.get("/sync/v3/queued_records/count", headers=h), 400)
    assert_error(client.get("/sync/v3/queued_records/count?from_site=x&to_site=1", headers=h), 400)


def test_site_name_parameter_must_match(client, session, tenant):
    site = make_site(session, tenant=tenant, site_id=4)
    assert client.get(f"/sync/v2/site?site_name={site.name}", headers=headers(site.name)).status_code == 200
    assert_error(client.get("/sync/v2/site?site_name=Other", headers=headers(site.name)), 400)


def test_brute_force_is_throttled_per_site_with_429_json(client, session, tenant):
    site = make_site(session, tenant=tenant, site_id=4)
    other = make_site(session, tenant=tenant, site_id=5)
    for _ in range(10):
        assert_error(client.get("/sync/v3/site", headers=headers(site.name, "guess")), 401)
    resp = client.get("/sync/v3/site", headers=headers(site.name))  # even the right password waits
    assert_error(resp, 429)
    assert int(resp.headers["Retry-After"]) > 0
    assert client.get("/sync/v3/site", headers=headers(other.name)).status_code == 200


def test_user_login_with_sha256_password(client, session, tenant):
    from tests.factories import make_user
    make_site(session, tenant=tenant, site_id=4, store_id="STORE4")
    user = make_user(session, tenant=tenant, role="admin", password="user-pw")
    import base64
    auth = {"Authorization": "Basic " + base64.b64encode(f"{user.username}:{sha('user-pw')}".encode()).decode()}
    resp = client.get("/sync/v3/user?store=STORE4", headers=auth)
    assert resp.status_code == 200 and resp.get_json() == {"UserID": user.id.hex, "isAdmin": True}
    assert_error(client.get("/sync/v3/user?store=OTHER", headers=auth), 400)
    bad = {"Authorization": "Basic " + base64.b64encode(f"{user.username}:{sha('nope')}".encode()).decode()}
    assert_error(client.get("/sync/v3/user?store=STORE4", headers=bad), 401)


def test_unknown_paths_and_methods_answer_in_msupply_shape(client, session, tenant):
    site = make_site(session, tenant=tenant, site_id=4)
    assert_error(client.get("/sync/v3/nothing_here", headers=headers(site.name)), 404)
    assert_error(client.get("/api/v4/patient", headers=headers(site.name)), 404)
    resp = client.get(f"/sync/v3/acknowledged_records?{route(4)}", headers=headers(site.name))
    assert_error(resp, 405)
    assert "POST" in resp.headers["Allow"]
    assert_error(client.post(f"/sync/v3/queued_records/count?{route(4)}", headers=headers(site.name)), 405)


def test_malformed_and_oversized_bodies_are_json_errors(client, app, session, tenant):
    site = make_site(session, tenant=tenant, site_id=4)
    h = {**headers(site.name), "Content-Type": "application/json"}
    assert_error(client.post(f"/sync/v3/queued_records?{route(4)}", data=b"[{", headers=h), 400)
    assert_error(client.post(f"/sync/v3/queued_records?{route(4)}", data=b'{"a": 1}', headers=h), 400)
    app.config["MAX_CONTENT_LENGTH"] = 100
    assert_error(client.post(f"/sync/v3/acknowledged_records?{route(4)}", data=b"[" + b'"x",' * 100 + b'"x"]',
                             headers=h), 413)


def _from(address: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": address}}


def test_someone_who_knows_the_site_name_cannot_lock_the_real_device_out(client, session, tenant):
    site = make_site(session, tenant=tenant, site_id=4)
    for _ in range(10):
        assert_error(client.get("/sync/v3/site", headers=headers(site.name, "guess"), **_from("10.9.0.1")), 401)
    assert_error(client.get("/sync/v3/site", headers=headers(site.name), **_from("10.9.0.1")), 429)
    resp = client.get("/sync/v3/site", headers=headers(site.name), **_from("10.9.0.2"))
    assert resp.status_code == 200, "the device, from its own address, still syncs"


def test_a_site_login_that_succeeds_clears_its_failures(client, session, tenant):
    site = make_site(session, tenant=tenant, site_id=4)
    for _ in range(9):
        assert_error(client.get("/sync/v3/site", headers=headers(site.name, "typo"), **_from("10.9.1.1")), 401)
    assert client.get("/sync/v3/site", headers=headers(site.name), **_from("10.9.1.1")).status_code == 200
    for _ in range(9):
        assert_error(client.get("/sync/v3/site", headers=headers(site.name, "typo"), **_from("10.9.1.1")), 401)
    assert client.get("/sync/v3/site", headers=headers(site.name), **_from("10.9.1.1")).status_code == 200


def test_a_mobile_user_login_shares_its_counters_with_auth_login(client, session, tenant):
    import base64
    from tests.factories import make_user
    make_site(session, tenant=tenant, site_id=4, store_id="STORE4")
    user = make_user(session, tenant=tenant, password="user-pw")
    for _ in range(10):
        assert client.post("/auth/login", json={"username": user.username, "password": "guess"},
                           **_from("10.9.2.1")).status_code == 401
    auth = {"Authorization": "Basic " + base64.b64encode(f"{user.username}:{sha('user-pw')}".encode()).decode()}
    assert_error(client.get("/sync/v3/user?store=STORE4", headers=auth, **_from("10.9.2.1")), 429)
    assert client.get("/sync/v3/user?store=STORE4", headers=auth, **_from("10.9.2.2")).status_code == 200


def test_odd_basic_credentials_are_401_json_not_500(client, session, tenant):
    import base64
    make_site(session, tenant=tenant, site_id=4, store_id="STORE4")
    for raw in (b"a\x00b:" + sha("x").encode(), b"Sat\x00:pw", b"n" * 100_000 + b":pw"):
        auth = {"Authorization": "Basic " + base64.b64encode(raw).decode(), "msupply-site-uuid": "d"}
        assert_error(client.get("/sync/v3/site", headers=auth), 401)
        assert_error(client.get("/sync/v3/user?store=STORE4", headers=auth), 401)


def test_a_verified_password_is_not_hashed_again_until_it_changes(client, session, tenant, monkeypatch):
    from models.msupply import store as msupply
    from web.msupply import auth
    calls = []
    real = msupply.check_site_password
    monkeypatch.setattr(msupply, "check_site_password", lambda *a, **k: calls.append(1) or real(*a, **k))
    site = make_site(session, tenant=tenant, site_id=4)
    for _ in range(3):
        assert client.get("/sync/v3/site", headers=headers(site.name)).status_code == 200
    assert len(calls) == 1  # one slow hash, then the remembered proof
    for _ in range(2):
        assert_error(client.get("/sync/v3/site", headers=headers(site.name, "wrong")), 401)
    assert len(calls) == 3  # a failure is never remembered
    assert not any(b"wrong" in key or PASSWORD.encode() in key for key in auth._verified)
    msupply.update_site(session, site, password="changed-pw", rounds=4)
    session.commit()
    assert_error(client.get("/sync/v3/site", headers=headers(site.name)), 401)  # the old proof no longer matches
    assert client.get("/sync/v3/site", headers=headers(site.name, "changed-pw")).status_code == 200


def _pull_status(client, name, password, hardware="device-1"):
    return client.get(f"/sync/v3/queued_records?{route(4, limit=10)}",
                      headers=headers(name, password, hardware=hardware))


def _ack(client, name, password, ids, hardware="device-1"):
    return client.post(f"/sync/v3/acknowledged_records?{route(4)}", json={"SyncRecordIDs": ids},
                       headers=headers(name, password, hardware=hardware))


def test_the_pull_loop_never_acts_on_a_remembered_site_row_that_is_stale(client, session, tenant):
    """The page and the ack may take the site row from the process's memory: a password changed, a
    device reset or a site removed since it was read is still refused at once, and a stale ack removes
    nothing."""
    from models.msupply import store as msupply
    from tests.web.msupply.helpers import put
    site = make_site(session, tenant=tenant, site_id=4)
    put(session, tenant, [("item", f"I{i}", {"ID": f"I{i}"}) for i in range(3)])
    page = _pull_status(client, site.name, PASSWORD)
    assert page.status_code == 200 and len(page.get_json()) == 3  # the row is now remembered
    ids = [r["SyncID"] for r in page.get_json()]

    row = msupply.get_site(session, tenant, 4)
    msupply.update_site(session, row, password="changed", rounds=4)
    session.commit()
    assert_error(_pull_status(client, site.name, PASSWORD), 401)
    assert_error(_ack(client, site.name, PASSWORD, ids), 401)
    assert msupply.queue_count(session, tenant, 4) == 3
    assert len(_pull_status(client, site.name, "changed").get_json()) == 3

    msupply.reset_hardware(session, msupply.get_site(session, tenant, 4))
    session.commit()
    assert _ack(client, site.name, "changed", ids[:1], hardware="device-2").status_code == 200  # binds afresh
    assert msupply.queue_count(session, tenant, 4) == 2
    assert_error(_pull_status(client, site.name, "changed"), 409)  # the old device is refused
    assert_error(_ack(client, site.name, "changed", ids[1:]), 409)
    assert msupply.queue_count(session, tenant, 4) == 2

    assert len(_pull_status(client, site.name, "changed", hardware="device-2").get_json()) == 2
    msupply.delete_site(session, msupply.get_site(session, tenant, 4))
    session.commit()
    assert_error(_pull_status(client, site.name, "changed", hardware="device-2"), 401)
    assert_error(_ack(client, site.name, "changed", ids[1:], hardware="device-2"), 401)
