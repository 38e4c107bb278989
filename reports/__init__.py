"""The project's own reports: the records, tables and pictures of the demo's and the studies' runs,
from which scripts/ print them and the README's generated figures are made.
"""
