"""Content delivery: what participants read and practise from the content library.

- shelf.py      /learn, /skills, /favorites, /plan and /safetyplan: menus, snippets, the plans in
                the participant's own words
- exercises.py  skill exercises as a flow kind: steps, answers, pauses, the end
- drip.py       the daily short read, planned per participant by program week
- receipts.py   what each participant got and thought of it ("Was this helpful?", ⭐ saved)
- stats.py      `iopbot content stats`
- setup.py      `install_content`: the library with hot reload, exercises, the daily read
"""
