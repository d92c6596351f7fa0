"""reflective practice meetings: the CRC's decisions taken through the gateway (plan sealed);
learning items from a meeting (tagged multi-agency, with the meeting instead of a case)

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-02 18:30:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0012'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rpm_crc_submission',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('step_key', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('flow_run_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('token', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('plan', sa.Text(), nullable=False),
    sa.Column('input_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('submitted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['meeting_id'], ['rpm_meeting.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token')
    )
    with op.batch_alter_table('rpm_crc_submission', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rpm_crc_submission_meeting_id'), ['meeting_id'],
                              unique=False)
    with op.batch_alter_table('learning_item', schema=None) as batch_op:
        batch_op.alter_column('case_id', existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column('meeting_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=20),
                                      nullable=False, server_default='rprp'))
        batch_op.create_index(batch_op.f('ix_learning_item_meeting_id'), ['meeting_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_learning_item_origin'), ['origin'], unique=False)
        batch_op.create_foreign_key('fk_learning_item_meeting_id', 'rpm_meeting',
                                    ['meeting_id'], ['id'])
        batch_op.create_unique_constraint('uq_learning_item_meeting_source_part',
                                          ['meeting_id', 'source', 'part'])


def downgrade() -> None:
    with op.batch_alter_table('learning_item', schema=None) as batch_op:
        batch_op.drop_constraint('uq_learning_item_meeting_source_part', type_='unique')
        batch_op.drop_constraint('fk_learning_item_meeting_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_learning_item_origin'))
        batch_op.drop_index(batch_op.f('ix_learning_item_meeting_id'))
        batch_op.drop_column('origin')
        batch_op.drop_column('meeting_id')
        batch_op.alter_column('case_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('rpm_crc_submission', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rpm_crc_submission_meeting_id'))
    op.drop_table('rpm_crc_submission')
