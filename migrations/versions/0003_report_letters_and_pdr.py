"""report: the complainant's summary and the PDR discussion (reg 70(6))

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 04:30:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('report') as batch:
        batch.add_column(sa.Column('complainant_summary', sa.Text(), nullable=False,
                                   server_default=''))
        batch.add_column(sa.Column('pdr_discussed_on', sa.Date(), nullable=True))
        batch.add_column(sa.Column('pdr_recorded_by',
                                   sqlmodel.sql.sqltypes.AutoString(length=254),
                                   nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('report') as batch:
        batch.drop_column('pdr_recorded_by')
        batch.drop_column('pdr_discussed_on')
        batch.drop_column('complainant_summary')
