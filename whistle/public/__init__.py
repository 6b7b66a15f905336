"""The public side of the reporters' app: statistics per fiscal year (the one page another
site may embed), their CSV, JSON and SVG forms, the handling manual, and the executive
summary reports a supervisor has signed off. Nothing here reads a case one by one."""
