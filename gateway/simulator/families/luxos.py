"""LuxOS (LUXminer) on Antminers: the cgminer-compatible RPC on 4028 with LUXminer's own commands, and
the landing page of its web UI.

Reply shapes follow the S19k Pro capture (tests/fixtures/devices/luxos, LUXminer 2025.4.8), with the
numbers from the miner's `Snapshot`. The quirks reproduced, because real clients depend on them:
* Rates are GHS. STATS `chain_rateN` is the since-boot average per board (it equals DEVS `MHS av`), and
  STATS "total rate" is their mean, not their sum. DEVS arrive out of order.
* There are no chip temperatures: `temps` reports four PCB sensors per board, labelled in METADATA
  (the exhaust side reads hot, the intake side cool), and STATS repeats the same four values under
  `temp_chipN`, `temp_pcbN` and `temp_picN`.
* `config` says whether the miner is curtailed (`CurtailMode` "Sleep", `IsPowerSupplyOn` false), which
  profile runs (`Profile`, `ProfileStep`) and the red LED mode (`RedLed`: auto/on/off/blink).
* `pools` `Last Share Time` is "HH:MM:SS" *ago*; a pool that never got a share shows the time since boot.
* Session and privileged commands: luxos_session.py.
`IsAtmEnabled` is reported false: with ATM on, real LuxOS moves between profiles by itself (and pyasic
switches ATM off around `profileset`); the simulator does not model ATM.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from aiohttp import web

from gateway.devices.model import FirmwareFamily
from gateway.simulator.families.base import dumps, invalid_command, miner_of, status
from gateway.simulator.families.luxos_session import PRIVILEGED, LuxSessions, LuxState, profile_table
from gateway.simulator.families.thirdparty import dashed, exhaust_pcb, ghs, hms, html_page, mhs
from gateway.simulator.miner import SimMiner, Snapshot

BUILD = "2025.4.8.220305"
GIT = "57b389c7"
COMPILE_TIME = "Tue Apr  8 22:05:35 UTC 2025"
DESCRIPTION = f"LUXminer {BUILD}-{GIT}"
API_VERSION = "3.7"
# The four PCB sensors of a board: LUXminer's key -> (label, grid position, index into
# BoardSnapshot.pcb_sensors_c, which runs from the coolest intake-side sensor to the hottest outlet one).
SENSORS = {
    "BottomLeft": ("Board Exhaust (bottom)", [1, 0], 2),
    "BottomRight": ("Board Intake (bottom)", [1, 1], 1),
    "TopLeft": ("Board Exhaust (top)", [0, 0], 3),
    "TopRight": ("Board Intake (top)", [0, 1], 0),
}
# STATS packs them exhaust, intake, intake, exhaust (the capture's "47-34-34-47")
PACKED_ORDER = (3, 0, 1, 2)
FAN_LABELS = (4, 2, 1, 3)  # LUXminer names the S19k Pro's fans in this order (capture)
CHAIN_SLOTS = 4
TEMPCTRL = {"Mode": "Auto", "Target": 70, "Hot": 80, "Dangerous": 90}
STOCK_VOLTAGE, VOLTS_PER_STEP = 13.5, 0.10125  # the capture's ladder: 11.88 V at step -16, 13.5 V at 0


def _board_average(snap: Snapshot, index: int) -> float:
    if snap.hashrate_ths <= 0:
        return 0.0
    return snap.average_ths * snap.boards[index].hashrate_ths / snap.hashrate_ths


def _exhaust(snap: Snapshot, index: int) -> float:
    return float(exhaust_pcb(snap.boards[index]))


def _packed(snap: Snapshot, index: int) -> str:
    sensors = snap.boards[index].pcb_sensors_c
    return dashed([float(sensors[i]) for i in PACKED_ORDER])


class LuxosFrontend:
    family: ClassVar[FirmwareFamily] = FirmwareFamily.LUXOS
    has_web: ClassVar[bool] = True
    has_v3: ClassVar[bool] = False

    def __init__(self) -> None:
        self.sessions = LuxSessions(DESCRIPTION)

    # --- RPC -----------------------------------------------------------------------------------------

    def rpc(self, miner: SimMiner, request: Mapping[str, Any]) -> bytes:
        command = str(request.get("command", ""))
        parameter = str(request.get("parameter", "") or "")
        snap = miner.snapshot()  # one instant for every section of a multi-command
        if "+" in command:
            parts = {part: [self._reply(miner, part, "", snap)] for part in dict.fromkeys(command.split("+"))}
            return dumps({**parts, "id": 1})
        return dumps(self._reply(miner, command, parameter, snap))

    def _reply(self, miner: SimMiner, command: str, parameter: str, snap: Snapshot) -> dict[str, Any]:
        when = int(snap.ts)
        if command == "logon":
            return self.sessions.logon(miner, when)
        if command == "session":
            return self.sessions.session(miner, when)
        if command in PRIVILEGED:
            return self.sessions.privileged(miner, command, parameter, when)
        state = self.sessions.states.get(miner)
        readers: dict[str, tuple[int, str, Callable[[], dict[str, Any]]]] = {
            "version": (22, "LUXminer versions", lambda: {"VERSION": [self._version(miner)]}),
            "summary": (11, "Summary", lambda: {"SUMMARY": [self._summary(snap)]}),
            "stats": (70, "LUXminer stats", lambda: {"STATS": self._stats(miner, snap)}),
            "devs": (9, f"{len(snap.boards)} ASC(s)", lambda: {"DEVS": self._devs(miner, state, snap)}),
            "devdetails": (69, "Device Details", lambda: {"DEVDETAILS": self._devdetails(miner, snap)}),
            "pools": (7, f"{len(snap.pools)} Pool(s)", lambda: {"POOLS": self._pools(snap)}),
            "fans": (202, f"{len(snap.fans_rpm)} Fan(s)", lambda: self._fans(miner, snap)),
            "temps": (201, f"{len(snap.boards)} Temp(s)", lambda: self._temps(snap)),
            "power": (311, "Power usage", lambda: {"POWER": [{"PSU": False, "Watts": round(snap.power_w)}]}),
            "profiles": (323, "List profiles", lambda: {"PROFILES": self._profiles(miner, state)}),
            "config": (33, "LUXminer config", lambda: {"CONFIG": [self._config(miner, state, snap)]}),
            "atm": (340, "ATM configuration", lambda: {"ATM": [self._atm(miner)]}),
            # pyasic's get_config needs both (its get_data raises without `groups`)
            "groups": (326, "1 Group(s)", lambda: {"GROUPS": [{"GROUP": 0, "Name": "Default", "Quota": 1}]}),
            "tempctrl": (327, "Temperature control", lambda: {"TEMPCTRL": [TEMPCTRL]}),
        }
        if command not in readers:
            return invalid_command(DESCRIPTION, when)
        code, msg, body = readers[command]
        return {"STATUS": status("S", code, msg, DESCRIPTION, when=when), **body(), "id": 1}

    def _version(self, miner: SimMiner) -> dict[str, Any]:
        return {
            "API": API_VERSION,
            "CompileTime": COMPILE_TIME,
            "LUXminer": f"{BUILD}-{GIT}",
            "Miner": BUILD,
            "Type": f"Antminer {miner.identity.model}",
        }

    def _summary(self, snap: Snapshot) -> dict[str, Any]:
        return {
            "Accepted": snap.accepted,
            "Best Share": 32768 if snap.accepted else 0,
            "Device Hardware%": 0.0,
            "Device Rejected%": 0.0,
            "Difficulty Accepted": snap.accepted * 65536,
            "Difficulty Rejected": snap.rejected * 65536,
            "Difficulty Stale": 0,
            "Discarded": 0,
            "Elapsed": snap.uptime_s,
            "Found Blocks": 0,
            "GHS 15m": ghs(snap.average_ths),
            "GHS 1m": ghs(snap.hashrate_ths),
            "GHS 24h": ghs(snap.average_ths),
            "GHS 30m": ghs(snap.average_ths),
            "GHS 5m": ghs(snap.hashrate_ths),
            "GHS 5s": ghs(snap.hashrate_ths),
            "GHS av": ghs(snap.average_ths),
            "Get Failures": 0,
            "Getworks": snap.accepted // 4,
            "Hardware Errors": snap.hw_errors,
            "Last getwork": int(snap.ts),
            "Local Work": 0,
            "Network Blocks": 0,
            "Pool Rejected%": round(100 * snap.rejected / max(1, snap.accepted + snap.rejected), 4),
            "Pool Stale%": 0.0,
            "Rejected": snap.rejected,
            "Remote Failures": 0,
            "Stale": 0,
            "Total MH": round(snap.average_ths * 1e6 * snap.uptime_s, 2),
            "Utility": round(snap.accepted * 60 / snap.uptime_s, 2) if snap.uptime_s else 0.0,
            "Work Utility": 0.0,
        }

    def _stats(self, miner: SimMiner, snap: Snapshot) -> list[dict[str, Any]]:
        header = {"CompileTime": COMPILE_TIME, "Miner": BUILD, "Type": f"Antminer {miner.identity.model}"}
        entry: dict[str, Any] = {
            "Calls": 0,
            "Elapsed": snap.uptime_s,
            "GHS 5s": ghs(snap.hashrate_ths),
            "GHS av": ghs(snap.average_ths),
            "ID": "BTM_SOC0",
            "Max": 0,
            "Min": 99999999,
            "Mode": 2,
            "STATS": 0,
            "Wait": 0,
        }
        averages = [ghs(_board_average(snap, i)) for i in range(len(snap.boards))]
        frequency = 0 if snap.sleeping else 300
        for n in range(1, CHAIN_SLOTS + 1):
            index = n - 1
            present = index < len(snap.boards)
            board = snap.boards[index] if present else None
            sensors = "0-0-0-0"
            if board is not None:
                sensors = _packed(snap, index)
            marks = "o" * board.chips_ok + "x" * (board.chips - board.chips_ok) if board else ""
            entry |= {
                f"chain_acn{n}": board.chips_ok if board else 0,
                f"chain_acs{n}": (" " + " ".join(marks[i : i + 4] for i in range(0, len(marks), 4)))
                if board
                else "",
                f"chain_hw{n}": board.hw_errors if board else 0,
                f"chain_rate{n}": f"{averages[index]:.2f}" if board else "0",
                f"freq{n}": float(frequency) if board else 0.0,
                f"temp_chip{n}": sensors,
                f"temp_pcb{n}": sensors,
                f"temp_pic{n}": sensors,
            }
        for n, rpm in enumerate(snap.fans_rpm, start=1):
            entry[f"fan{n}"] = rpm
        for n in range(1, len(snap.boards) + 1):
            entry[f"temp{n}"] = _exhaust(snap, n - 1)
            entry[f"temp2_{n}"] = _exhaust(snap, n - 1)
        entry |= {
            "fan_num": len(snap.fans_rpm),
            "frequency": frequency,
            "miner_count": len(snap.boards),
            "miner_id": miner.identity.mac.replace(":", "").lower(),
            "miner_version": BUILD,
            "no_matching_work": snap.hw_errors,
            "rate_30m": ghs(snap.average_ths),
            "rate_unit": "GH",
            "temp_max": max((_exhaust(snap, i) for i in range(len(snap.boards))), default=0.0),
            "temp_num": len(snap.boards),
            "total rate": round(sum(averages) / len(averages), 2) if averages else 0.0,
            "total_acn": CHAIN_SLOTS,  # LUXminer's count of chain slots, not of chips (capture: 4)
            "total_freqavg": float(frequency),
            "total_rateideal": ghs(snap.ideal_ths),
        }
        return [header, dict(sorted(entry.items()))]

    def _devs(self, miner: SimMiner, state: LuxState, snap: Snapshot) -> list[dict[str, Any]]:
        last_share = next((p.last_share_ts for p in snap.pools if p.active and p.last_share_ts), 0)
        rows = []
        for index, board in enumerate(snap.boards):
            average = _board_average(snap, index)
            rows.append(
                {
                    "ASC": index,
                    "Board": "BHB56903",
                    "Connector": f"J{7 + index}",
                    "Device Elapsed": snap.uptime_s,
                    "Enabled": "Y",
                    "Hardware Errors": board.hw_errors,
                    "ID": index,
                    "IsRamping": snap.in_transition and not snap.sleeping,
                    "IsUserShutdown": snap.sleeping,
                    "Last Share Time": last_share or 0,
                    "Last Valid Work": int(snap.ts),
                    "MHS 15m": mhs(average),
                    "MHS 1m": mhs(board.hashrate_ths),
                    "MHS 5m": mhs(board.hashrate_ths),
                    "MHS 5s": mhs(board.hashrate_ths),
                    "MHS av": mhs(average),
                    "Name": "",
                    "Nominal MHS": mhs(board.ideal_ths),
                    "Profile": state.profile,
                    "SerialNumber": f"{miner.identity.serial}B{index}",
                    "Status": "Alive",
                    "Temperature": _exhaust(snap, index),
                }
            )
        # LUXminer lists its boards out of order (the capture: ID 2, 0, 1)
        return rows[-1:] + rows[:-1]

    def _devdetails(self, miner: SimMiner, snap: Snapshot) -> list[dict[str, Any]]:
        model = f"Antminer {miner.identity.model}"
        return [
            {
                "DEVDETAILS": i,
                "Name": "",
                "ID": i,
                "Driver": "",
                "Kernel": "",
                "Model": model,
                "Device Path": "",
            }
            for i, _ in enumerate(snap.boards)
        ]

    def _pools(self, snap: Snapshot) -> list[dict[str, Any]]:
        rows = []
        for index, pool in enumerate(snap.pools):
            ago = snap.ts - pool.last_share_ts if pool.last_share_ts else snap.uptime_s
            rows.append(
                {
                    "Accepted": pool.accepted,
                    "Diff": "64K" if pool.active else "0",
                    "Difficulty Accepted": pool.accepted * 65536,
                    "GROUP": 0,
                    "Get Failures": 0,
                    "Has Stratum": True,
                    "Last Share Time": hms(ago, two_digit_hours=True),
                    "POOL": index,
                    "Priority": index,
                    "Quota": 1.0,
                    "Rejected": pool.rejected,
                    "Remote Failures": 0,
                    "Stale": 0,
                    "Status": "Alive" if pool.active else "Dead",
                    "Stratum Active": pool.active,
                    "Stratum URL": pool.url.split("://")[-1],
                    "URL": pool.url,
                    "User": pool.user,
                }
            )
        return rows

    def _fans(self, miner: SimMiner, snap: Snapshot) -> dict[str, Any]:
        top = miner.physics.params.fan_max_rpm
        labels = FAN_LABELS if len(snap.fans_rpm) == len(FAN_LABELS) else range(1, len(snap.fans_rpm) + 1)
        fans = [
            {"FAN": f"FAN{label}", "ID": i, "RPM": rpm, "Speed": round(100 * rpm / top)}
            for i, (label, rpm) in enumerate(zip(labels, snap.fans_rpm, strict=True))
        ]
        return {"FANCTRL": [{"MinFans": max(0, len(fans) - 1), "PowerOffSpeed": 20}], "FANS": fans}

    def _temps(self, snap: Snapshot) -> dict[str, Any]:
        meta = {key: {"Label": label, "Position": pos} for key, (label, pos, _) in SENSORS.items()}
        rows = []
        for index, board in enumerate(snap.boards):
            row: dict[str, Any] = {"ID": index, "TEMP": index}
            row |= {key: float(board.pcb_sensors_c[i]) for key, (_, _, i) in SENSORS.items()}
            rows.append(row)
        return {"METADATA": [meta], "TEMPS": rows}

    def _profiles(self, miner: SimMiner, state: LuxState) -> list[dict[str, Any]]:
        return [
            {
                "CanRestore": True,
                "Frequency": p.frequency,
                "HasOverrides": False,
                "Hashrate": p.hashrate_ths,
                "IsDynamic": True,
                "IsTuned": p.name == state.profile,
                "Profile Name": p.name,
                "Step": str(p.step),
                "Voltage": round(STOCK_VOLTAGE + VOLTS_PER_STEP * p.step, 2),
                "Watts": p.watts,
            }
            for p in profile_table(miner)
        ]

    def _config(self, miner: SimMiner, state: LuxState, snap: Snapshot) -> dict[str, Any]:
        step = next((p.step for p in profile_table(miner) if p.name == state.profile), 0)
        return {
            "ASC Count": len(snap.boards),
            "ControlBoardType": "cvitek",
            "Cooling": "Air",
            "CurtailMode": "Sleep" if snap.sleeping else "None",
            "DHCP": True,
            "FeeStatus": "Ok",
            "GreenLed": "auto",
            "Hostname": miner.identity.hostname,
            "IPAddr": miner.ip,
            "ImmersionMode": False,
            "IsAtmEnabled": False,
            "IsPowerSupplyOn": not snap.sleeping,
            "IsTuning": snap.in_transition and not snap.sleeping,
            "MACAddr": miner.identity.mac.lower(),
            "Model": f"Antminer {miner.identity.model}",
            "NameplateTHS": miner.profile.nominal_ths,
            "OS": "LuxOS",
            "Pool Count": len(snap.pools),
            "Profile": state.profile,
            "ProfileStep": str(step),
            "RedLed": state.red_led,
            "SerialNumber": miner.identity.serial,
            "Strategy": "Failover",
            "SystemStatus": "Normal",
        }

    def _atm(self, miner: SimMiner) -> dict[str, Any]:
        table = profile_table(miner)
        return {
            "Enabled": False,
            "MaxProfile": table[-1].name,
            "MinProfile": table[0].name,
            "PostRampMinutes": 15,
            "StartupMinutes": 15,
            "TempWindow": 5,
        }

    # --- web -----------------------------------------------------------------------------------------

    def web_routes(self) -> list[web.RouteDef]:
        return [web.get("/", self._index)]

    async def _index(self, request: web.Request) -> web.Response:
        miner_of(request)
        return html_page("LuxOS", "Luxor Firmware")

    def v3(self, miner: SimMiner, request: Mapping[str, Any]) -> bytes:
        raise NotImplementedError("LuxOS has no Whatsminer API v3")


FRONTEND = LuxosFrontend()
