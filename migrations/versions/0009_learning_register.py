"""the organisational learning register: learning items and their history

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 13:30:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('learning_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('part', sa.Integer(), nullable=False),
    sa.Column('theme', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('unit', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('target_on', sa.Date(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=False),
    sa.Column('closing_note', sa.Text(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['rprp_case.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_id', 'source', 'part')
    )
    with op.batch_alter_table('learning_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_learning_item_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_learning_item_status'), ['status'], unique=False)
    op.create_table('learning_item_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['learning_item.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('learning_item_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_learning_item_event_item_id'), ['item_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('learning_item_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_learning_item_event_item_id'))
    op.drop_table('learning_item_event')
    with op.batch_alter_table('learning_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_learning_item_status'))
        batch_op.drop_index(batch_op.f('ix_learning_item_case_id'))
    op.drop_table('learning_item')
