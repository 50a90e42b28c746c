"""Imports (导入): members and orders from CSV and Excel files, through the event ingestion path.

Merchants live in Excel. ``siyu import members|orders FILE`` and ``POST /api/v1/imports/…`` read a
file as a stream, map its columns (Chinese and English headers), turn each row into events
(``member_joined``; ``order_paid`` and ``order_refunded``), and ingest them chunk by chunk, each
chunk committed on its own, so a killed import loses at most the chunk in flight and a re-run
counts the rows already imported as duplicates. Rejected rows are reported with their line,
column and reason. See docs/imports.md.
"""
