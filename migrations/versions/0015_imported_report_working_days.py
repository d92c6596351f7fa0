"""an imported report's working days from referral, counted once at import

The trends' time-to-report figure read every imported case's two days and counted the working
days between them on every page (a second of a decade's page); the import now stores the count.
Cases imported before this revision are counted here, with the calendar in force now.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 17:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('imported_case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('report_working_days', sa.Integer(), nullable=True))
    from tasks.calendar import england_and_wales
    from tasks.trends import report_working_days

    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT i.case_id, c.referred_on, i.report_filed_on FROM imported_case i "
        "JOIN rprp_case c ON c.id = i.case_id WHERE i.report_filed_on IS NOT NULL")).all()
    if not rows:
        return
    calendar = england_and_wales()

    def day(value: object) -> object:
        import datetime

        return value if isinstance(value, datetime.date) else \
            datetime.date.fromisoformat(str(value)[:10])

    updates = [{"case_id": case_id,
                "days": report_working_days(day(referred), day(filed), calendar)}
               for case_id, referred, filed in rows]
    bind.execute(sa.text("UPDATE imported_case SET report_working_days = :days "
                         "WHERE case_id = :case_id"), updates)


def downgrade() -> None:
    with op.batch_alter_table('imported_case', schema=None) as batch_op:
        batch_op.drop_column('report_working_days')
