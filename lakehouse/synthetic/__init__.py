"""The synthetic multi-site hospital: source systems in their real formats, and the truth.

``generate(out, HospitalConfig(...))`` writes the main hospital's HIS database, LIS HL7
feed, EMR CDA documents, notes and DICOM studies, alliance members' FHIR NDJSON and GB18030
CSV exports, the truth manifest (Parquet) and ``manifest.json``. See
``docs/synthetic-hospital.md`` for the layout contract.
"""

from lakehouse.synthetic.dirt import DefectCode, DirtRates
from lakehouse.synthetic.hospital import HospitalConfig, HospitalReport, generate

__all__ = ["DefectCode", "DirtRates", "HospitalConfig", "HospitalReport", "generate"]
