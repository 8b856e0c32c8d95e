"""The pyasic fallback: pyasic's own MinerData objects, flattened at the edge and parsed purely."""

from __future__ import annotations

import pytest
from pyasic.data import Fan, HashBoard, MinerData
from pyasic.data.pools import PoolMetrics, PoolUrl
from pyasic.device.algorithm import SHA256Algo

from gateway.devices.driver import Credentials, DriverContext, Endpoint, run_parser
from gateway.devices.errors import ProtocolError, Unreachable
from gateway.devices.model import FirmwareFamily, MinerStatus, Source
from gateway.devices.pyasic_backend import PARSER, PyasicDriver, flatten
from gateway.devices.rpc import RpcLimits
from tests.devices.badminer import free_port
from tests.devices.capture import ctx


def _ths(value: float) -> object:
    return SHA256Algo.hashrate(rate=value, unit=SHA256Algo.unit.TH)


def _miner_data(wattage: int | None) -> MinerData:
    boards = [
        HashBoard(
            slot=i,
            hashrate=_ths(36.5),
            temp=60 + i,
            chip_temp=70 + i,
            chips=114,
            expected_chips=114,
            missing=False,
        )
        for i in range(3)
    ]
    return MinerData(
        ip="127.0.0.1",
        mac="AA:BB:CC:DD:EE:FF",
        fw_ver="49.0.1.3",
        hashboards=boards,
        fans=[Fan(speed=5400), Fan(speed=5520)],
        wattage=wattage,
        uptime=3600,
        pools=[
            PoolMetrics(
                url=PoolUrl.from_str("stratum+tcp://pool.example:3333"),
                user="site.w1",
                active=True,
                alive=True,
                accepted=10,
                rejected=1,
            )
        ],
    )


def test_flattened_pyasic_data_becomes_a_sample() -> None:
    sample = PARSER.parse({"pyasic": flatten(_miner_data(wattage=3245))}, ctx())
    assert sample.status is MinerStatus.MINING
    assert sample.hashrate_ths == pytest.approx(109.5)
    assert [b.hashrate_ths for b in sample.boards] == pytest.approx([36.5, 36.5, 36.5])
    assert [b.temp_chip_c for b in sample.boards] == [70, 71, 72]
    assert sample.fans_rpm == (5400, 5520)
    assert (sample.power_w, sample.power_source) == (3245, Source.MEASURED)
    assert sample.pool_url == "stratum+tcp://pool.example:3333"
    assert sample.uptime_s == 3600
    assert sample.identity is not None and sample.identity.firmware is FirmwareFamily.PYASIC


def test_missing_watts_stay_unknown_without_a_profile() -> None:
    sample = PARSER.parse({"pyasic": flatten(_miner_data(wattage=None))}, ctx())
    assert sample.power_w is None and sample.power_source is None


def test_no_data_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        run_parser(PARSER.parse, {"pyasic": "nonsense"}, ctx(), host="h")


async def test_driver_reports_an_unreachable_host_within_its_deadline() -> None:
    driver = PyasicDriver(
        DriverContext(
            miner_id="m",
            endpoint=Endpoint(host="127.0.0.1", rpc_port=free_port()),
            credentials=Credentials(),
            limits=RpcLimits(deadline_s=2.0),
        )
    )
    with pytest.raises(Unreachable):
        await driver.read()
