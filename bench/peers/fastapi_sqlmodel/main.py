"""The FastAPI + SQLModel peer: the two resources as SQLModel's tutorial ("FastAPI and
Pydantic", multiple models, ``Session`` dependency, sync endpoints) writes them, with a
bearer-key dependency and ``?limit=&offset=`` lists that return ``{"data": [...], "total": n}``.

Run by the benchmark (bench/peers/phase.py) as ``uvicorn main:app`` with one process.
Environment: ``PEER_DATABASE_URL`` (an SQLAlchemy URL) and ``PEER_KEY`` (the bearer key).
See docs/performance.md, "The peers".
"""

import os
import secrets
from collections.abc import Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Field, Session, SQLModel, create_engine, func, select

# -- appointments (src/overplane/declarations/crm.py) ----------------------------------------


class AppointmentBase(SQLModel):
    customer_name: str = Field(max_length=1000)
    customer_phone_number: str | None = Field(default=None, max_length=1000)
    customer_skype: str | None = Field(default=None, max_length=1000)
    customer_details: str | None = Field(default=None, max_length=65535)
    scheduled_time: str = Field(max_length=1000)
    status: str = Field(max_length=1000)
    calendar_event: str | None = Field(default=None, max_length=1000)
    customer_email: str = Field(max_length=1000)
    appointment_with: str | None = Field(default=None, max_length=1000)
    party: str | None = Field(default=None, max_length=1000)


class Appointment(AppointmentBase, table=True):
    id: int | None = Field(default=None, primary_key=True)


class AppointmentCreate(AppointmentBase):
    pass


class AppointmentPublic(AppointmentBase):
    id: int


class AppointmentsPublic(SQLModel):
    data: list[AppointmentPublic]
    total: int


class AppointmentUpdate(SQLModel):
    customer_name: str | None = Field(default=None, max_length=1000)
    customer_phone_number: str | None = Field(default=None, max_length=1000)
    customer_skype: str | None = Field(default=None, max_length=1000)
    customer_details: str | None = Field(default=None, max_length=65535)
    scheduled_time: str | None = Field(default=None, max_length=1000)
    status: str | None = Field(default=None, max_length=1000)
    calendar_event: str | None = Field(default=None, max_length=1000)
    customer_email: str | None = Field(default=None, max_length=1000)
    appointment_with: str | None = Field(default=None, max_length=1000)
    party: str | None = Field(default=None, max_length=1000)


# -- party links (src/overplane/declarations/accounts.py) ------------------------------------


class PartyLinkBase(SQLModel):
    primary_role: str = Field(max_length=1000)
    secondary_role: str | None = Field(default=None, max_length=1000)
    primary_party: str | None = Field(default=None, max_length=1000)
    secondary_party: str | None = Field(default=None, max_length=1000)


class PartyLink(PartyLinkBase, table=True):
    __tablename__ = "party_link"

    id: int | None = Field(default=None, primary_key=True)


class PartyLinkCreate(PartyLinkBase):
    pass


class PartyLinkPublic(PartyLinkBase):
    id: int


class PartyLinksPublic(SQLModel):
    data: list[PartyLinkPublic]
    total: int


class PartyLinkUpdate(SQLModel):
    primary_role: str | None = Field(default=None, max_length=1000)
    secondary_role: str | None = Field(default=None, max_length=1000)
    primary_party: str | None = Field(default=None, max_length=1000)
    secondary_party: str | None = Field(default=None, max_length=1000)


# -- the database --------------------------------------------------------------------------

database_url = os.environ.get("PEER_DATABASE_URL", "sqlite:///database.db")
connect_args = {"check_same_thread": False} if database_url.startswith("sqlite") else {}
# The tutorial's create_engine(url, connect_args=...) keeps SQLAlchemy's default pool: 5
# connections + 10 overflow, and a request waits up to 30 s for one. Sync endpoints run in
# a thread pool of 40 threads, so with 64 concurrent clients 40 requests want a connection at
# once: 15 get one, the rest wait and time out, and the server stops answering. The one
# change from the tutorial: a pool that covers every concurrent request.
engine = create_engine(database_url, connect_args=connect_args, pool_size=40, max_overflow=24)


def create_db_and_tables() -> None:
    SQLModel.metadata.create_all(engine)


def get_session() -> Iterator[Session]:
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

# -- the key -------------------------------------------------------------------------------

API_KEY = os.environ.get("PEER_KEY", "")
bearer = HTTPBearer(auto_error=False)


def require_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    if credentials is None or not secrets.compare_digest(
        credentials.credentials.encode(), API_KEY.encode()
    ):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="Not authenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )


@asynccontextmanager
async def lifespan(app: FastAPI) -> Any:
    create_db_and_tables()
    yield


app = FastAPI(lifespan=lifespan, dependencies=[Depends(require_key)])

# -- appointments --------------------------------------------------------------------------


@app.post(
    "/api/crm/appointment", response_model=AppointmentPublic, status_code=status.HTTP_201_CREATED
)
def create_appointment(appointment: AppointmentCreate, session: SessionDep) -> Any:
    db_appointment = Appointment.model_validate(appointment)
    session.add(db_appointment)
    session.commit()
    session.refresh(db_appointment)
    return db_appointment


@app.get("/api/crm/appointment", response_model=AppointmentsPublic)
def read_appointments(
    session: SessionDep,
    offset: int = 0,
    limit: Annotated[int, Query(le=100)] = 100,
) -> Any:
    total = session.exec(select(func.count()).select_from(Appointment)).one()
    appointments = session.exec(
        select(Appointment).order_by(Appointment.id).offset(offset).limit(limit)
    ).all()
    return AppointmentsPublic(data=appointments, total=total)


@app.get("/api/crm/appointment/{appointment_id}", response_model=AppointmentPublic)
def read_appointment(appointment_id: int, session: SessionDep) -> Any:
    appointment = session.get(Appointment, appointment_id)
    if not appointment:
        raise HTTPException(status_code=404, detail="Appointment not found")
    return appointment


@app.patch("/api/crm/appointment/{appointment_id}", response_model=AppointmentPublic)
def update_appointment(
    appointment_id: int, appointment: AppointmentUpdate, session: SessionDep
) -> Any:
    db_appointment = session.get(Appointment, appointment_id)
    if not db_appointment:
        raise HTTPException(status_code=404, detail="Appointment not found")
    appointment_data = appointment.model_dump(exclude_unset=True)
    db_appointment.sqlmodel_update(appointment_data)
    session.add(db_appointment)
    session.commit()
    session.refresh(db_appointment)
    return db_appointment


@app.delete("/api/crm/appointment/{appointment_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_appointment(appointment_id: int, session: SessionDep) -> None:
    appointment = session.get(Appointment, appointment_id)
    if not appointment:
        raise HTTPException(status_code=404, detail="Appointment not found")
    session.delete(appointment)
    session.commit()


# -- party links ---------------------------------------------------------------------------


@app.post(
    "/api/accounts/party-link", response_model=PartyLinkPublic, status_code=status.HTTP_201_CREATED
)
def create_party_link(party_link: PartyLinkCreate, session: SessionDep) -> Any:
    db_party_link = PartyLink.model_validate(party_link)
    session.add(db_party_link)
    session.commit()
    session.refresh(db_party_link)
    return db_party_link


@app.get("/api/accounts/party-link", response_model=PartyLinksPublic)
def read_party_links(
    session: SessionDep,
    offset: int = 0,
    limit: Annotated[int, Query(le=100)] = 100,
) -> Any:
    total = session.exec(select(func.count()).select_from(PartyLink)).one()
    party_links = session.exec(
        select(PartyLink).order_by(PartyLink.id).offset(offset).limit(limit)
    ).all()
    return PartyLinksPublic(data=party_links, total=total)


@app.get("/api/accounts/party-link/{party_link_id}", response_model=PartyLinkPublic)
def read_party_link(party_link_id: int, session: SessionDep) -> Any:
    party_link = session.get(PartyLink, party_link_id)
    if not party_link:
        raise HTTPException(status_code=404, detail="Party link not found")
    return party_link


@app.patch("/api/accounts/party-link/{party_link_id}", response_model=PartyLinkPublic)
def update_party_link(party_link_id: int, party_link: PartyLinkUpdate, session: SessionDep) -> Any:
    db_party_link = session.get(PartyLink, party_link_id)
    if not db_party_link:
        raise HTTPException(status_code=404, detail="Party link not found")
    db_party_link.sqlmodel_update(party_link.model_dump(exclude_unset=True))
    session.add(db_party_link)
    session.commit()
    session.refresh(db_party_link)
    return db_party_link


@app.delete("/api/accounts/party-link/{party_link_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_party_link(party_link_id: int, session: SessionDep) -> None:
    party_link = session.get(PartyLink, party_link_id)
    if not party_link:
        raise HTTPException(status_code=404, detail="Party link not found")
    session.delete(party_link)
    session.commit()
