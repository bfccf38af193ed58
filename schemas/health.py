from marshmallow import fields

from schemas.common import Base


class Health(Base):
    status = fields.String(required=True)
    version = fields.String()
