"""The pool of paraphrased instructions (MEIT drew from 256) and a deterministic choice among them.

The choice depends only on a seed and the record id, so the same record gets the same instruction in
every run, every worker and every process, whatever the shuffling.
"""

from __future__ import annotations

import hashlib

INSTRUCTIONS: tuple[str, ...] = (
    "Write the clinical report for this 12-lead ECG.",
    "Generate a diagnostic report for the ECG shown.",
    "Interpret this electrocardiogram and write the report.",
    "Describe the findings of this 12-lead ECG.",
    "What does this ECG show? Write a concise report.",
    "Provide a cardiologist's interpretation of this ECG.",
    "Read this ECG and summarise the findings as a report.",
    "Produce the ECG report for this recording.",
    "Give the clinical interpretation of this 12-lead electrocardiogram.",
    "Please write a report describing this ECG.",
    "Analyse the ECG and report rhythm, rate, conduction and repolarisation.",
    "Summarise this electrocardiogram in a clinical report.",
    "Report the key findings in this 12-lead ECG.",
    "Write a brief ECG interpretation for the chart.",
    "As a cardiologist, interpret the following ECG.",
    "Draft the diagnostic statement for this ECG tracing.",
    "Examine this ECG and describe what you see.",
    "Compose a report for the electrocardiogram below.",
    "Interpret the 12-lead ECG and list its findings.",
    "Provide the machine-style report for this ECG.",
    "Describe the rhythm and any abnormalities on this ECG.",
    "Write up this ECG as you would in a clinical note.",
    "What is your interpretation of this electrocardiogram?",
    "Generate the findings section for this ECG.",
    "Please interpret this ECG recording.",
    "Create a clinical ECG report from this signal.",
    "Review this 12-lead tracing and write the report.",
    "Give a short report of this ECG's findings.",
    "State the diagnosis suggested by this ECG.",
    "Summarise the electrocardiographic findings.",
    "Report on this ECG: rhythm, rate, axis, intervals and ST segments.",
    "Interpret the attached ECG for the referring physician.",
    "Write a diagnostic summary of this ECG.",
    "Explain the findings of this electrocardiogram in a report.",
    "Describe this ECG in the style of a cardiology report.",
    "Provide an ECG interpretation.",
    "What are the findings on this 12-lead ECG?",
    "Generate a report for this resting ECG.",
    "Please provide a report for this electrocardiogram.",
    "Interpret this tracing and write the findings.",
    "Give your reading of this ECG.",
    "Produce a concise interpretation of this ECG.",
    "Write the ECG report that belongs to this recording.",
    "Describe any abnormal findings on this ECG, or state that it is normal.",
    "Read the following ECG and report.",
    "Document the interpretation of this ECG.",
    "Prepare a clinical report for this 12-lead electrocardiogram.",
    "Assess this ECG and write your conclusions.",
    "Provide a structured interpretation of this ECG.",
    "Tell me what this ECG shows.",
    "Characterise the rhythm and morphology in this ECG.",
    "Write the interpretation for this ECG as a cardiologist would.",
    "Generate a clinical summary for this electrocardiogram.",
    "Interpret the ECG below.",
    "Give the diagnostic findings for this ECG.",
    "Write a report of this electrocardiographic recording.",
    "What would the report for this ECG say?",
    "Provide the clinical reading of this 12-lead ECG.",
    "Describe this electrocardiogram.",
    "Please analyse this ECG and write the report.",
)

DEFAULT_INSTRUCTION = INSTRUCTIONS[0]


def choose_instruction(record_id: str, seed: int = 0, pool: tuple[str, ...] = INSTRUCTIONS) -> str:
    """Pick an instruction from ``pool`` as a stable function of ``(seed, record_id)``."""
    digest = hashlib.blake2b(f"{seed}:{record_id}".encode(), digest_size=8).digest()
    return pool[int.from_bytes(digest, "little") % len(pool)]
