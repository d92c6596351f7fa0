"""report drafts held for PSD's quality check

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 13:20:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('report_draft',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('submitted_by', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('submitted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('psd_comments', sa.Text(), nullable=False),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('decided_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['rprp_case.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_id', 'round')
    )
    with op.batch_alter_table('report_draft', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_draft_case_id'), ['case_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('report_draft', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_draft_case_id'))
    op.drop_table('report_draft')
