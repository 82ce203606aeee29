"""``python seed.py COUNT BODY``: COUNT appointments made from the JSON object BODY, in one
transaction through SQLModel; prints their ids, one a line. Creates the tables first (as the
app does at start-up), so it can run before the server.

The benchmark seeds the peers this way rather than through their API: one commit instead of
one per object, so seeding takes seconds whatever the database's commit costs.
"""

import json
import sys

from main import Appointment, AppointmentCreate, create_db_and_tables, engine
from sqlmodel import Session


def main() -> None:
    count, body = int(sys.argv[1]), sys.argv[2]
    create_db_and_tables()
    appointment = AppointmentCreate.model_validate(json.loads(body))
    with Session(engine) as session:
        made = [Appointment.model_validate(appointment) for _ in range(count)]
        session.add_all(made)
        session.flush()  # assigns the ids; read them before the commit expires the objects
        ids = [str(m.id) for m in made]
        session.commit()
    print("\n".join(ids))


if __name__ == "__main__":
    main()
