"""Weekly questionnaires (instruments: PHQ-9, GAD-7, and any an author adds as content).

- scoring.py  the total by item id, the band, and the safety signal of the answers (pure)
- service.py  the questionnaire as a flow kind: sending the week's questionnaires one after the
              other, answers stored by item, the safety trigger, the score and what the
              participant is told at the end
- planner.py  every participant's coming questionnaire day as a row, in their time zone, at most weekly
- setup.py    `install_instruments`: the content, the flow kind, the planner, the sender
"""
