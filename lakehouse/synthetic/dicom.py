"""PACS: one DICOM file per imaging study (pydicom), pixels drawn from the recorded finding.

Metadata is what a PACS export holds (patient, study, series and instance identifiers,
dates, modality, institution), with Chinese person names as ``PINYIN=汉字=`` in
SpecificCharacterSet ``GB18030`` or ``ISO_IR 192`` (UTF-8). The 64x64 image shows a chest
outline with two lung fields; a nodule is a small bright disc and a consolidation a larger
noisy patch at the position and radius recorded in ``truth/image_labels.parquet``. A
person's emphysema (``truth/lung_risk.parquet``) makes both lung fields larger and darker.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from lakehouse.synthetic.dirt import DefectCode, Dirt, Landing
from lakehouse.synthetic.identity import is_chinese, pinyin_name
from lakehouse.synthetic.model import Encounter, ImagingStudy, Patient, Registration, Site, Staff
from lakehouse.synthetic.truth import TruthWriter

SOP_CLASS = {"CR": "1.2.840.10008.5.1.4.1.1.1", "CT": "1.2.840.10008.5.1.4.1.1.2"}
DESCRIPTION = {"CR": "胸部正位片", "CT": "胸部CT平扫"}
SIZE = 64


def person_name(name: str) -> str:
    """DICOM PN: ``ZHANG^WEI=张^伟=`` for Chinese names, ``SMITH^JOHN`` otherwise."""
    if is_chinese(name):
        family, _, given = pinyin_name(name).partition(" ")
        return f"{family}^{given}={name[:1]}^{name[1:]}="
    if " " in name:
        given, _, family = name.partition(" ")
        return f"{family}^{given}"
    return name


def pixels(seed: int, study: ImagingStudy) -> np.ndarray:
    """The image of a study: noise, chest outline, lungs and the finding (uint16, 12 bits)."""
    rng = np.random.default_rng([seed, zlib.crc32(study.study_id.encode())])
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    img = rng.normal(60.0, 15.0, (SIZE, SIZE))
    body = ((xx - 32) / 30) ** 2 + ((yy - 32) / 28) ** 2 <= 1
    img[body] += 700
    e = study.emphysema  # hyperinflated, hyperlucent lungs: larger and darker fields
    for cx in (20, 44):
        lung = ((xx - cx) / (10 + 1.5 * e)) ** 2 + ((yy - 30) / (18 + 2 * e)) ** 2 <= 1
        img[lung] -= 450 + 120 * e
    cx, cy = study.center
    lesion = (xx - cx) ** 2 + (yy - cy) ** 2 <= study.radius**2
    if study.finding == "nodule":
        img[lesion] += 900
    elif study.finding == "consolidation":
        img[lesion] += 500 + rng.normal(0.0, 80.0, int(lesion.sum()))
    return np.clip(img, 0, 4095).astype(np.uint16)


def _uid(seed: int, study: ImagingStudy, what: str) -> str:
    return str(generate_uid(prefix="2.25.", entropy_srcs=[str(seed), study.study_id, what]))


def render(
    seed: int,
    p: Patient,
    reg: Registration,
    e: Encounter,
    site: Site,
    doctor: Staff,
    charset: str,
    blank_id: bool,
) -> tuple[bytes, str]:
    """The DICOM file's bytes and its SOP Instance UID."""
    study = e.imaging
    assert study is not None
    sop_uid = _uid(seed, study, "instance")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(SOP_CLASS[study.modality])
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = charset
    ds.SOPClassUID = SOP_CLASS[study.modality]
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.performed_at.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = study.performed_at.strftime("%H%M%S")
    ds.AccessionNumber = f"{e.visit_no}{study.modality}"
    ds.AdmissionID = e.visit_no  # (0038,0010): the visit the study was ordered in
    ds.Modality = study.modality
    ds.Manufacturer = "SYNTHETIC"
    ds.InstitutionName = site.name
    ds.ReferringPhysicianName = person_name(doctor.name)
    ds.StudyDescription = DESCRIPTION[study.modality]
    ds.PatientName = person_name(reg.name)
    ds.PatientID = "" if blank_id else reg.local_id
    ds.IssuerOfPatientID = site.code
    ds.PatientBirthDate = p.person.birth_date.strftime("%Y%m%d")
    ds.PatientSex = p.person.sex
    ds.BodyPartExamined = "CHEST"
    ds.StudyInstanceUID = _uid(seed, study, "study")
    ds.SeriesInstanceUID = _uid(seed, study, "series")
    ds.StudyID = study.study_id[-12:]
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = SIZE
    ds.PixelSpacing = [5.0, 5.0]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixels(seed, study).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue(), sop_uid


class Pacs:
    """Writes one site's imaging studies and their labels."""

    def __init__(self, site: Site, landing: Landing, truth: TruthWriter, seed: int) -> None:
        self.site, self.landing, self.truth, self.seed = site, landing, truth, seed

    def add_patient(self, p: Patient, staff: dict[str, Staff], dirt: Dirt) -> None:
        reg = p.registrations.get(self.site.code)
        if reg is None:
            return
        for e in p.at(self.site.code):
            study = e.imaging
            if study is None:
                continue
            name = f"{e.visit_no}_{study.modality}.dcm"
            rel = self.landing.path("pacs", self.site.code, name)
            charset = "GB18030" if zlib.crc32(study.study_id.encode()) % 2 else "ISO_IR 192"
            blank = dirt.roll("missing_field")
            if blank:
                dirt.record(
                    DefectCode.MISSING_FIELD,
                    "pacs",
                    self.site.code,
                    rel,
                    study.study_id,
                    "PatientID",
                )
            data, sop_uid = render(self.seed, p, reg, e, self.site, staff[e.doctor], charset, blank)
            self.landing.deliver(dirt, "pacs", self.site.code, name, data, 1)
            self.truth.add(
                "image_labels",
                study_id=study.study_id,
                file=rel,
                person_id=p.person.person_id,
                encounter_id=e.encounter_id,
                institution_code=self.site.code,
                modality=study.modality,
                finding=study.finding,
                center_x=study.center[0],
                center_y=study.center[1],
                radius=study.radius,
                sop_instance_uid=sop_uid,
                emphysema=study.emphysema,
            )
