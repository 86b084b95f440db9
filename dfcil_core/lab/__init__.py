"""The lab: the regression gate and the numerics snapshot, throughput, the cost sheet, the paper's
tables and values, the check against the authors' code."""
