"""--scheduler at something that is not a Dask scheduler (comparator.run.cluster): an HTTP
server, a banner, silence, nothing listening, ... each answered with exit status 2 and one
line naming the address and what is there, in under 15 s -- never a hang or a traceback.
The real scheduler's case is tests/test_store.py (a LocalCluster)."""
import contextlib
import io
import time

import pytest
from stubs import serve

from comparator.cli import app as cli
from comparator.run import cluster

SWEEP = ["sweep", "--arch", "transformer", "--d-model", "64", "--layers", "1", "--seq", "64",
         "--method", "traced", "--no-baseline", "--no-cache", "--scheduler"]
# what each stub is called in the message
FOUND = {"http": "an HTTP server (it answers 'HTTP/1.0 200 OK'): the Dask dashboard serves "
                 "HTTP (by default on port 8787; the scheduler listens on 8786)",
         "banner": "a service that greets with 'SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13', not "
                   "with a Dask handshake",
         "silent": "a service that accepted the connection but said nothing within 10 s",
         "closes": "a service that accepted the connection and closed it without a word",
         "garbage": "a service that greets with bytes ff ff ff ff",
         "short": "stops short of a Dask handshake",
         "refused": "nothing listening on port"}


def _run(args):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(args)
    return rc, err.getvalue()


@pytest.mark.parametrize("kind", sorted(FOUND))
def test_not_a_scheduler_is_named_in_under_15_s(kind):
    pytest.importorskip("distributed")
    with serve(kind) as address:
        t = time.monotonic()
        rc, err = _run([*SWEEP, address])
        took = time.monotonic() - t
    assert rc == 2 and took < 15, (took, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"comparator sweep: error: --scheduler: '{address}' is not "
                               "allowed; a reachable Dask scheduler; found ")
    assert FOUND[kind] in lines[0], lines[0]


def test_the_whole_probe_keeps_its_deadline():
    with serve("silent") as address:
        t = time.monotonic()
        with pytest.raises(cluster.SchedulerError):
            cluster.probe(address, timeout=1.5)
        assert time.monotonic() - t < 2


def test_a_host_that_does_not_resolve():
    with pytest.raises(cluster.SchedulerError) as e:
        cluster.probe("tcp://no-such-host.invalid:8786", timeout=5)
    assert "no such host: 'no-such-host.invalid' does not resolve" in e.value.allowed


@pytest.mark.parametrize("address", ["tcp://h", "tcp://h:0", "tcp://h:99999", "tcp://:1"])
def test_an_address_without_a_port(address):
    with pytest.raises(cluster.SchedulerError) as e:
        cluster.probe(address)
    assert e.value.field == "--scheduler" and "1 to 65535" in e.value.allowed


def test_a_dask_worker_is_not_a_scheduler():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp://", dashboard_address=None) as c:
        assert cluster.probe(c.scheduler_address)["pickle-protocol"] >= 4
        worker = next(iter(c.workers.values())).address
        assert cluster.probe(worker) is not None           # a Dask server greets alike
        with pytest.raises(cluster.SchedulerError) as e:
            cluster.client(worker, timeout=8)
    assert "a Dask server that is not a scheduler" in e.value.allowed
