"""people come and go, and the data key: invites that grant what they were issued for and can be
revoked, discharge and alumni, staff deactivation, and the program's state (the data key's
fingerprint, a key rotation in progress)

Invites issued before this revision carry no role: redeeming one grants the role the staff record
has, as before, but every older unused invite of a person is revoked when a newer one is issued.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 15:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('program_state',
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', bot.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_program_state'))
    )
    with op.batch_alter_table('invites', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('locale', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('revoked_at', bot.db.types.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('discharged_at', bot.db.types.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deactivated_at', bot.db.types.UTCDateTime(timezone=True), nullable=True))

    # A link already issued grants no more than the role its person has now...
    op.execute(sa.text("UPDATE invites SET role = (SELECT staff.role FROM staff WHERE staff.id = invites.staff_id) "
                       "WHERE staff_id IS NOT NULL"))
    # ...and of several unused links for one person, only the newest still works.
    for owner in ("staff_id", "participant_id"):
        op.execute(sa.text(
            f"UPDATE invites SET revoked_at = (SELECT MAX(newer.created_at) FROM invites newer "
            f"WHERE newer.{owner} = invites.{owner} AND newer.id > invites.id) "
            f"WHERE used_at IS NULL AND {owner} IS NOT NULL AND EXISTS (SELECT 1 FROM invites newer "
            f"WHERE newer.{owner} = invites.{owner} AND newer.id > invites.id)"))


def downgrade() -> None:
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.drop_column('deactivated_at')

    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.drop_column('discharged_at')

    with op.batch_alter_table('invites', schema=None) as batch_op:
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('locale')
        batch_op.drop_column('role')

    op.drop_table('program_state')
