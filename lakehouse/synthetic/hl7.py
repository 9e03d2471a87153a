"""The LIS feed: HL7 v2.5 ORU^R01 results and ADT^A01/A02/A03/A08 events, as files.

Per chunk of patients the feed drops an ADT file and an ORU file, batched with FHS/BHS
(every third ORU file MLLP-framed instead), with the segment separator of the drop (CR
mostly, some LF or CRLF). PID-3 repeats (MRN ~ 身份证号), text is escaped (``\\T\\`` for
``&``), NTE carries comments and ZPI (a Z-segment) the insurance. Late corrections arrive
in a ``*_corr.hl7`` file as OBX-11 ``C`` results.
"""

from __future__ import annotations

import random
import zlib
from datetime import datetime, timedelta

from lakehouse.synthetic import catalog
from lakehouse.synthetic.dirt import DefectCode, Dirt, Landing
from lakehouse.synthetic.model import Encounter, LabResult, Patient, Registration, Site
from lakehouse.synthetic.truth import TruthWriter

#: (message control id, segments, lab truth rows of the message)
Message = tuple[str, list[str], list[dict[str, object]]]
_CLASS = {"O": "O", "E": "E", "I": "I"}


def escape(text: str) -> str:
    """HL7 v2 escaping of the delimiters ``\\ | ^ & ~``."""
    out = text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
    return out.replace("&", "\\T\\").replace("~", "\\R\\")


def ts(value: datetime) -> str:
    return value.strftime("%Y%m%d%H%M%S")


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


class Lis:
    """Collects one chunk's messages and writes them as the feed's files."""

    def __init__(self, site: Site, landing: Landing, truth: TruthWriter) -> None:
        self.site, self.landing, self.truth = site, landing, truth
        self.oru: list[Message] = []
        self.adt: list[tuple[str, list[str]]] = []
        self.corr: list[Message] = []
        self.seq = 0

    def _ctrl(self, chunk: int) -> str:
        self.seq += 1
        return f"LIS{chunk:05d}{self.seq:06d}"

    def _msh(self, ctrl: str, at: datetime, kind: str) -> str:
        return (
            f"MSH|^~\\&|LIS|{self.site.code}|LAKEHOUSE|{self.site.code}|{ts(at)}||{kind}|{ctrl}"
            "|P|2.5|||AL|NE|CHN|UNICODE UTF-8"
        )

    def _pid(self, p: Patient, reg: Registration) -> str:
        name = reg.name
        if " " in name:
            given, _, family = name.partition(" ")
        else:
            family, given = name[:1], name[1:]
        ids = f"{reg.local_id}^^^{self.site.code}^MR"
        if reg.id_card:
            ids += f"~{reg.id_card}^^^CHN^NNCHN"
        a = reg.address
        addr = f"{escape(a.street)}^^{a.city}^{a.province}^{a.postcode}^CHN^H"
        sex = p.person.sex
        return (
            f"PID|1||{ids}||{escape(family)}^{escape(given)}||{p.person.birth_date:%Y%m%d}|{sex}"
            f"|||{addr}||{reg.phone}^PRN^CP"
        )

    def _pv1(self, e: Encounter, staff_name: str) -> str:
        fields = [""] * 46
        fields[0], fields[1], fields[2] = "PV1", "1", _CLASS[e.kind]
        fields[3] = f"{e.dept}^{e.bed or ''}^^{self.site.code}"
        fields[7] = f"{e.doctor}^{escape(staff_name)}"
        fields[10], fields[19], fields[44] = e.dept, e.visit_no, ts(e.start)
        fields[45] = ts(e.end) if e.kind == "I" else ""
        return "|".join(fields)

    def add_patient(self, p: Patient, staff: dict[str, str], chunk: int, dirt: Dirt) -> None:
        reg = p.registrations.get(self.site.code)
        if reg is None:
            return
        for e in p.at(self.site.code):
            pv1 = self._pv1(e, staff[e.doctor])
            events = []
            if e.kind == "I":
                events.append(("A01", e.start))
                events += [("A02", t.at) for t in e.transfers]
                if zlib.crc32(e.encounter_id.encode()) % 5 == 0:  # a demographics update
                    events.append(("A08", e.start + timedelta(hours=6)))
                events.append(("A03", e.end))
            for trigger, at in events:
                ctrl = self._ctrl(chunk)
                self.adt.append(
                    (
                        ctrl,
                        [
                            self._msh(ctrl, at, f"ADT^{trigger}^ADT_A01"),
                            f"EVN|{trigger}|{ts(at)}",
                            self._pid(p, reg),
                            pv1,
                            f"ZPI|1|城镇职工基本医疗保险|YB{reg.local_id}",
                        ],
                    )
                )
            if e.labs:
                self._oru(p, reg, e, pv1, chunk, dirt)

    def _obx(self, i: int, lab: LabResult, value: str, unit: str, rng: str, status: str) -> str:
        spec = catalog.labs()[lab.code]
        code = f"{lab.code}^{spec['zh']}^99LIS^{spec['loinc']}^{spec['en']}^LN"
        flag = "" if lab.flag == "N" else lab.flag
        at = ts(lab.collected_at)
        return f"OBX|{i}|NM|{code}||{value}|{escape(unit)}|{rng}|{flag}|||{status}|||{at}"

    def _oru(
        self, p: Patient, reg: Registration, e: Encounter, pv1: str, chunk: int, dirt: Dirt
    ) -> None:
        ctrl = self._ctrl(chunk)
        file = self.landing.path("lis", self.site.code, f"ORU_R01_{chunk:05d}.hl7")
        at = e.labs[0].collected_at + timedelta(hours=2)
        segs = [self._msh(ctrl, at, "ORU^R01^ORU_R01"), self._pid(p, reg), pv1]
        rows: list[dict[str, object]] = []
        by_panel: dict[str, list[LabResult]] = {}
        for lab in e.labs:
            by_panel.setdefault(catalog.labs()[lab.code]["panel"], []).append(lab)
        for n, (panel, labs) in enumerate(sorted(by_panel.items()), start=1):
            pname = catalog.clinical()["panels"][panel]["zh"]
            order = f"{e.visit_no}{panel}"
            segs.append(f"ORC|RE|{order}|F{order}")
            segs.append(
                f"OBR|{n}|{order}|F{order}|{panel}^{pname}^99LIS|||{ts(labs[0].collected_at)}|||||||{ts(at)}||{e.doctor}"
            )
            for i, lab in enumerate(labs, start=1):
                spec = catalog.labs()[lab.code]
                value, unit, digits = lab.value, spec["unit"], int(spec["digits"])
                low, high = spec["low"], spec["high"]
                if "alt_unit" in spec and dirt.roll("unit_variant"):
                    f = float(spec["alt_factor"])
                    value, unit, low, high, digits = (
                        value * f,
                        spec["alt_unit"],
                        low * f,
                        high * f,
                        2,
                    )
                    dirt.record(
                        DefectCode.UNIT_VARIANT,
                        "lis",
                        self.site.code,
                        file,
                        lab.lab_id,
                        f"{spec['unit']} -> {unit}",
                    )
                reported = round(value, digits)
                if dirt.roll("out_of_range"):
                    reported = round(value * 100, digits)
                    dirt.record(
                        DefectCode.OUT_OF_RANGE,
                        "lis",
                        self.site.code,
                        file,
                        lab.lab_id,
                        "value x100",
                    )
                rng_text = f"{_fmt(low, digits)}-{_fmt(high, digits)}"
                sent = reported
                corrected = dirt.roll("late_correction")
                if corrected:
                    sent = round(reported * random.Random(lab.lab_id).uniform(0.5, 0.8), digits)
                segs.append(self._obx(i, lab, _fmt(sent, digits), unit, rng_text, "F"))
                if lab.comment:
                    segs.append(f"NTE|{i}|L|{escape(lab.comment)}")
                row = {
                    "lab": lab,
                    "person_id": p.person.person_id,
                    "reported_value": reported,
                    "reported_unit": unit,
                    "record_id": ctrl,
                }
                if corrected:
                    cctrl = self._ctrl(chunk)
                    late = at + timedelta(days=random.Random(cctrl).randrange(1, 10))
                    self.corr.append(
                        (
                            cctrl,
                            [
                                self._msh(cctrl, late, "ORU^R01^ORU_R01"),
                                self._pid(p, reg),
                                pv1,
                                f"ORC|RE|{order}|F{order}",
                                f"OBR|1|{order}|F{order}|{panel}^{pname}^99LIS|||{ts(lab.collected_at)}|||||||{ts(late)}||{e.doctor}",
                                self._obx(1, lab, _fmt(reported, digits), unit, rng_text, "C"),
                            ],
                            [dict(row, record_id=cctrl)],
                        )
                    )
                    dirt.record(
                        DefectCode.LATE_CORRECTION,
                        "lis",
                        self.site.code,
                        file,
                        lab.lab_id,
                        f"first sent as {_fmt(sent, digits)} in message {ctrl}; "
                        f"corrected in {cctrl}",
                    )
                else:
                    rows.append(row)
        segs.append(f"ZPI|1|城镇职工基本医疗保险|YB{reg.local_id}")
        self.oru.append((ctrl, segs, rows))

    def flush(self, chunk: int, dirt: Dirt) -> None:
        """Write this chunk's ADT, ORU and correction files and the lab truth rows."""
        adt: list[Message] = [(c, s, []) for c, s in self.adt]
        files: list[tuple[str, list[Message], bool]] = [
            (f"ADT_{chunk:05d}.hl7", adt, False),
            (f"ORU_R01_{chunk:05d}.hl7", self.oru, chunk % 3 == 2),
            (f"ORU_R01_{chunk:05d}_corr.hl7", self.corr, False),
        ]
        for name, messages, mllp in files:
            if messages:
                self._write(name, messages, mllp, dirt)
        self.oru, self.adt, self.corr = [], [], []

    def _write(
        self,
        name: str,
        messages: list[Message],
        mllp: bool,
        dirt: Dirt,
    ) -> None:
        rel = self.landing.path("lis", self.site.code, name)
        # The drop's segment separator depends on the file, not on the dirt stream.
        sep = random.Random(name).choices(["\r", "\n", "\r\n"], weights=[70, 15, 15])[0]
        texts = []
        for ctrl, segs, _rows in messages:
            if dirt.roll("missing_field"):
                segs = [
                    s.replace(s.split("|")[3], "", 1) if s.startswith("PID|") else s for s in segs
                ]
                dirt.record(DefectCode.MISSING_FIELD, "lis", self.site.code, rel, ctrl, "PID-3")
            text = sep.join(segs)
            if dirt.roll("malformed_message"):
                if dirt.rng.random() < 0.5:
                    text = text[: len(text) // 2]
                    detail = "message cut mid-segment"
                else:
                    text = sep.join(segs[1:])
                    detail = "MSH segment missing"
                dirt.record(DefectCode.MALFORMED_MESSAGE, "lis", self.site.code, rel, ctrl, detail)
            texts.append(text)
        last = max(m[1][0].split("|")[6] for m in messages)
        if mllp:
            body = "".join(f"\x0b{t}\x1c\r" for t in texts)
        else:
            head = f"FHS|^~\\&|LIS|{self.site.code}|LAKEHOUSE|{self.site.code}|{last}||{name}"
            bhs = f"BHS|^~\\&|LIS|{self.site.code}|LAKEHOUSE|{self.site.code}|{last}"
            body = sep.join([head, bhs, *texts, f"BTS|{len(texts)}", "FTS|1"]) + sep
        encoding = "utf-8"
        if dirt.roll("wrong_encoding"):
            encoding = "gb18030"
            dirt.record(
                DefectCode.WRONG_ENCODING,
                "lis",
                self.site.code,
                rel,
                None,
                "GB18030 bytes, MSH-18 UNICODE UTF-8",
            )
        self.landing.deliver(dirt, "lis", self.site.code, name, body.encode(encoding), len(texts))
        for _ctrl, _segs, rows in messages:
            for row in rows:
                lab = row["lab"]
                assert isinstance(lab, LabResult)
                self.truth.add_lab(
                    lab,
                    encounter_id=lab.lab_id.rsplit("-", 1)[0],
                    person_id=row["person_id"],
                    institution_code=self.site.code,
                    source_system="lis",
                    reported_value=row["reported_value"],
                    reported_unit=row["reported_unit"],
                    file=rel,
                    record_id=row["record_id"],
                )
