"""the monthly learning board: one pack per month

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 18:30:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('learning_board_pack',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('month', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('figures', sa.Text(), nullable=False),
    sa.Column('built_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('month')
    )


def downgrade() -> None:
    op.drop_table('learning_board_pack')
