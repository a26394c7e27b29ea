"""Everything sent later is a row: the outbox and its helpers.

- outbox.py  claim due rows with a lease, send them through the Messenger, mark them sent; the
             urgent lane for pages; features register their row kinds and planners here
- rows.py    `enqueue`: a row with a unique key (idempotent), without importing the worker
- hooks.py   a participant's time, zone, quiet hours or status changed: replan their rows
- status.py  `iopbot schedule status`: what is due, late, failed
"""
