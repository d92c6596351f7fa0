"""central record: imported cases and workforce headcounts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 13:10:00.000000
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('imported_case',
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('non_engagement', sa.Boolean(), nullable=True),
    sa.Column('referred_back', sa.Boolean(), nullable=True),
    sa.Column('report_filed_on', sa.Date(), nullable=True),
    sa.Column('imported_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['rprp_case.id'], ),
    sa.PrimaryKeyConstraint('case_id'),
    sa.UniqueConstraint('reference')
    )
    op.create_table('workforce_headcount',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('characteristic', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('group', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('headcount', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('as_of', 'characteristic', 'group')
    )
    with op.batch_alter_table('workforce_headcount', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workforce_headcount_as_of'), ['as_of'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('workforce_headcount', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workforce_headcount_as_of'))
    op.drop_table('workforce_headcount')
    op.drop_table('imported_case')
