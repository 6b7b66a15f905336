"""Rate limits on the costly pages, shared storage, failing closed, and the Argon2 gate."""

from __future__ import annotations

import threading
import time

import pytest

from whistle import codes, config, crypto, ratelimit

from .conftest import REDIS_URL, Reporter, csrf_token, redis_reachable


def _check(client, code="1234 5678 9012 3456 7890 1234 5670", addr="192.0.2.10"):
    page = client.get("/status", environ_base={"REMOTE_ADDR": addr}).get_data(as_text=True)
    return client.post("/status", data={"code": code, "csrf_token": csrf_token(page)}, environ_base={"REMOTE_ADDR": addr})


def test_status_checks_limited_per_client(make_app):
    app = make_app(ratelimit_enabled=True, ratelimit_status="3 per hour")
    client = app.test_client()
    assert [_check(client).status_code for _ in range(4)] == [400, 400, 400, 429]
    assert _check(client, addr="192.0.2.11").status_code == 400  # another client is not affected


def test_limit_page_is_translated_and_calm(make_app):
    app = make_app(ratelimit_enabled=True, ratelimit_status="1 per hour")
    client = app.test_client()
    _check(client)
    client.get("/?lang=en")
    response = _check(client)
    assert response.status_code == 429
    assert "Too many requests came from your connection" in response.get_data(as_text=True)


def test_report_submissions_limited(make_app):
    app = make_app(ratelimit_enabled=True, ratelimit_submit="2 per hour")
    reporter = Reporter(app.test_client())
    assert [reporter.submit().status_code for _ in range(3)] == [200, 200, 429]


def test_get_pages_are_never_limited(make_app):
    app = make_app(ratelimit_enabled=True, ratelimit_status="1 per hour")
    client = app.test_client()
    assert all(client.get("/status").status_code == 200 for _ in range(5))


class TestClientNetwork:
    """One client to the limiter: an IPv4 address, an IPv6 network, or a Tor circuit."""

    @pytest.mark.parametrize(
        "a, b",
        [
            ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe"),  # one /64
            ("::ffff:192.0.2.10", "192.0.2.10"),  # IPv4-mapped IPv6 is the IPv4 client
            ("192.0.2.10", "192.0.2.10"),
        ],
    )
    def test_same_client(self, a, b):
        assert ratelimit.client_network(a, 64) == ratelimit.client_network(b, 64)

    @pytest.mark.parametrize(
        "a, b",
        [
            ("2001:db8:1:2::1", "2001:db8:1:3::1"),  # neighbouring /64s
            ("192.0.2.10", "192.0.2.11"),  # IPv4: every address
            ("fc00:dead:beef:4dad::1:1", "fc00:dead:beef:4dad::1:2"),  # two Tor circuits
            ("fc00:dead:beef:4dad::1:1", "fc00:dead:beef:4dae::1:1"),
        ],
    )
    def test_different_clients(self, a, b):
        assert ratelimit.client_network(a, 64) != ratelimit.client_network(b, 64)

    def test_prefix_length_is_followed(self):
        assert ratelimit.client_network("2001:db8:1:2::1", 48) == ratelimit.client_network("2001:db8:1:ffff::1", 48)
        assert ratelimit.client_network("2001:db8:1:2::1", 48) != ratelimit.client_network("2001:db8:2:2::1", 48)
        assert ratelimit.client_network("2001:db8::1", 128) != ratelimit.client_network("2001:db8::2", 128)
        assert ratelimit.client_network("2001:db8:1:2::1", 64) == "2001:db8:1:2::/64"

    def test_not_an_address_is_keyed_as_it_is(self):
        assert ratelimit.client_network("", 64) == ""
        assert ratelimit.client_network("unix:/run/x", 64) == "unix:/run/x"

    def test_ipv6_clients_limited_per_64(self, make_app):
        app = make_app(ratelimit_enabled=True, ratelimit_status="2 per hour")
        client = app.test_client()
        same_net = ["2001:db8:1:2::1", "2001:db8:1:2:aaaa::9", "2001:db8:1:2::abcd"]
        assert [_check(client, addr=a).status_code for a in same_net] == [400, 400, 429]
        assert _check(client, addr="2001:db8:1:3::1").status_code == 400  # the next /64 is another client
        assert _check(client, addr="::ffff:192.0.2.10").status_code == 400
        assert [_check(client, addr="192.0.2.10").status_code for _ in range(2)] == [400, 429]

    def test_ipv6_prefix_setting(self, make_app):
        app = make_app(ratelimit_enabled=True, ratelimit_status="1 per hour", ratelimit_ipv6_prefix=48)
        client = app.test_client()
        assert [_check(client, addr=a).status_code for a in ("2001:db8:1:2::1", "2001:db8:1:9::1")] == [400, 429]

    def test_tor_circuits_are_limited_one_by_one(self, make_app):
        app = make_app(ratelimit_enabled=True, ratelimit_status="1 per hour")
        client = app.test_client()
        assert _check(client, addr="fc00:dead:beef:4dad::a:1").status_code == 400
        assert _check(client, addr="fc00:dead:beef:4dad::a:2").status_code == 400
        assert _check(client, addr="fc00:dead:beef:4dad::a:1").status_code == 429

    @pytest.mark.parametrize("prefix", ["31", "129", "x"])
    def test_ipv6_prefix_must_be_a_prefix_length(self, make_app, prefix):
        with pytest.raises(config.ConfigError):
            make_app(ratelimit_ipv6_prefix=prefix)


@pytest.mark.redis
class TestRedis:
    @pytest.fixture(autouse=True)
    def _redis(self):
        if not redis_reachable():
            pytest.skip(f"Redis not reachable at {REDIS_URL}")
        import redis

        self.redis = redis.Redis.from_url(REDIS_URL)
        self.redis.flushdb()
        yield
        self.redis.flushdb()

    def test_counters_shared_between_processes(self, make_app):
        shared = {"secret_key": "s" * 40, "ratelimit_enabled": True, "ratelimit_storage_uri": REDIS_URL,
                  "ratelimit_status": "3 per hour"}
        worker_a = make_app(**shared)
        statuses = [_check(worker_a.test_client()).status_code for _ in range(2)]
        worker_b = make_app(**shared)
        statuses += [_check(worker_b.test_client()).status_code for _ in range(2)]
        assert statuses == [400, 400, 400, 429]

    def test_redis_keys_hold_no_address_and_expire(self, make_app):
        app = make_app(ratelimit_enabled=True, ratelimit_storage_uri=REDIS_URL)
        _check(app.test_client(), addr="198.51.100.23")
        keys = [k.decode() for k in self.redis.keys("*")]
        assert keys
        assert not any("198.51.100.23" in k or "198051100023" in k for k in keys)
        assert all(0 < self.redis.ttl(k) <= 3600 for k in keys)


class TestStorageDown:
    DEAD = "redis://127.0.0.1:1"

    def test_costly_pages_fail_closed_with_503(self, make_app):
        import redis  # noqa: F401  (in the [test] extra)
        app = make_app(ratelimit_enabled=True, ratelimit_storage_uri=self.DEAD)
        client = app.test_client()
        client.get("/?lang=en")
        response = _check(client)
        assert response.status_code == 503
        assert "cannot accept reports right now" in response.get_data(as_text=True)
        assert Reporter(client).submit().status_code == 503
        assert client.get("/").status_code == 200  # the rest of the site stays up

    def test_fail_open_when_configured(self, make_app):
        import redis  # noqa: F401  (in the [test] extra)
        app = make_app(ratelimit_enabled=True, ratelimit_storage_uri=self.DEAD, ratelimit_fail_closed="false")
        client = app.test_client()
        assert _check(client).status_code == 400
        assert Reporter(client).submit().status_code == 200


CHEAP = codes.CodeCost(1, 256, 1)


class TestArgonGate:
    """A flood of checks holding every check slot cannot stop a new report, and cannot hold
    more than four threads per check slot."""

    @pytest.fixture
    def blocked_argon(self, monkeypatch):
        release = threading.Event()
        started = threading.Semaphore(0)
        real = crypto.argon2id

        def slow(secret, salt, **kw):
            if secret.startswith(b"hold"):
                started.release()
                release.wait(10)
            return real(secret, salt, **kw)

        monkeypatch.setattr(crypto, "argon2id", slow)
        yield release, started
        release.set()
        codes.set_concurrency(2)

    @staticmethod
    def _check(secret: str, untagged: bool = False) -> None:
        codes.derive_each(secret, [(b"s" * 16, CHEAP)], untagged=untagged)

    @classmethod
    def _check_in_thread(cls, secret: str, untagged: bool = False) -> threading.Thread:
        thread = threading.Thread(target=cls._check, args=(secret, untagged))
        thread.start()
        return thread

    @staticmethod
    def _report_in_thread() -> threading.Event:
        done = threading.Event()
        threading.Thread(target=lambda: (codes.derive("67890", b"s" * 16, CHEAP), done.set())).start()
        return done

    @pytest.mark.parametrize("slots", [2, 3, 4])
    def test_checks_get_busy_but_reports_go_through(self, blocked_argon, slots):
        release, started = blocked_argon
        codes.set_concurrency(slots, check_wait=0.2)
        flood = [self._check_in_thread(f"hold-{i}") for i in range(slots - 1)]
        for _ in flood:
            assert started.acquire(timeout=5)
        # Every check slot is taken: the next check gives up quickly...
        t0 = time.monotonic()
        with pytest.raises(codes.Busy):
            self._check("12345")
        assert time.monotonic() - t0 < 2
        # ...while a new report's derivation still runs at once, in the slot kept for it.
        assert self._report_in_thread().wait(5)
        release.set()
        for thread in flood:
            thread.join(5)

    def test_one_slot_is_shared_and_a_report_waits_its_turn(self, blocked_argon):
        release, started = blocked_argon
        codes.set_concurrency(1, check_wait=0.2)
        flood = self._check_in_thread("hold-1")
        assert started.acquire(timeout=5)
        with pytest.raises(codes.Busy):
            self._check("12345")
        done = self._report_in_thread()
        assert not done.wait(0.5)  # no slot kept for reports when there is only one
        release.set()
        assert done.wait(5)
        flood.join(5)

    @pytest.mark.parametrize("slots", [1, 2, 3, 4])
    def test_waiting_checks_are_bounded(self, blocked_argon, slots):
        """With the check slots taken and three checks waiting for each, one more gives
        up at once; with one fewer waiting, it waits its turn."""
        release, started = blocked_argon
        check_slots = max(1, slots - 1)
        codes.set_concurrency(slots, check_wait=3)
        threads = [self._check_in_thread(f"hold-{i}") for i in range(check_slots)]
        for _ in threads:
            assert started.acquire(timeout=5)
        threads += [self._check_in_thread(f"1234{i}") for i in range(3 * check_slots - 1)]
        _until(lambda: _places_left() == 1)
        # Room for one more: it waits (and then runs, once the slots are released).
        waiting = self._check_in_thread("56789")
        _until(lambda: _places_left() == 0)
        assert waiting.is_alive()
        t0 = time.monotonic()
        with pytest.raises(codes.Busy):
            self._check("67890")
        assert time.monotonic() - t0 < 0.5  # did not wait its check_wait of 3 s
        release.set()
        for thread in [*threads, waiting]:
            thread.join(5)
            assert not thread.is_alive()

    def test_one_untagged_check_at_a_time(self, blocked_argon):
        release, started = blocked_argon
        codes.set_concurrency(4, check_wait=3)
        first = self._check_in_thread("hold-untagged", untagged=True)
        assert started.acquire(timeout=5)
        t0 = time.monotonic()
        with pytest.raises(codes.Busy):
            self._check("12345", untagged=True)
        assert time.monotonic() - t0 < 0.5
        tagged = self._check_in_thread("23456")  # a check with a right tag still runs
        tagged.join(5)
        assert not tagged.is_alive()
        release.set()
        first.join(5)
        self._check("34567", untagged=True)  # free again

    def test_busy_status_page_is_503_without_the_code(self, app, client, monkeypatch):
        monkeypatch.setattr(codes, "derive_each", _raise_busy)
        code = codes.new_code(app.extensions["whistle.server_key"]).display()
        client.get("/?lang=en")
        response = _check(client, code=code)
        page = response.get_data(as_text=True)
        assert response.status_code == 503
        assert "Many people are checking their reports right now" in page
        assert code not in page and code.replace(" ", "") not in page


def _raise_busy(*_a, **_k):
    raise codes.Busy()


def _places_left() -> int:
    """Checks the gate's waiting room would still take (a peek inside the semaphore)."""
    return codes._gate._check_room._value


def _until(condition, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the threads did not reach the gate"
        time.sleep(0.01)
