"""The care team reaches out: a message from a coach or clinician, the reply back to them.

Also /techhelp: what to do when the video link fails.
"""
