"""One Bot API call's parameters, read from a query string, a form, a multipart upload or JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from bot.sandbox.botapi.errors import BotAPIError, bad_request

_JSON_FIELDS_HINT: Final = {"reply_markup": "reply keyboard markup"}


@dataclass
class Upload:
    filename: str | None
    content_type: str | None
    data: bytes


class Params:
    """One call's parameters, typed on access: form fields are strings (objects as JSON text),
    JSON bodies carry real types. Missing or malformed values become Telegram's 400s."""

    def __init__(self, values: dict[str, Any], uploads: dict[str, Upload]) -> None:
        self.values = values
        self.uploads = uploads

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise bad_request(f'field "{name}" must be of type String')

    def integer(self, name: str) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f'field "{name}" must be of type Integer') from None

    def number(self, name: str) -> float | None:
        value = self.values.get(name)
        try:
            return None if value is None or value == "" else float(value)
        except (TypeError, ValueError):
            raise bad_request(f'field "{name}" must be of type Number') from None

    def flag(self, name: str) -> bool:
        value = self.values.get(name)
        return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))

    def obj(self, name: str) -> Any:
        value = self.values.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {_JSON_FIELDS_HINT.get(name, name)} JSON object") from None
        return value

    def chat_id_or_none(self) -> int | None:
        try:
            return self.integer("chat_id")
        except BotAPIError:
            return None

    def chat_id(self) -> int:
        if self.values.get("chat_id") in (None, ""):
            raise bad_request("chat_id is empty")
        chat_id = self.chat_id_or_none()
        if chat_id is None:  # "@username" chats are channels; the sandbox has only private chats
            raise bad_request("chat not found")
        return chat_id

    def message_id(self) -> int:
        if self.values.get("inline_message_id"):
            raise bad_request("inline messages are not supported by the sandbox Bot API")
        message_id = self.integer("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        return message_id


async def read_params(request: web.Request) -> Params:
    values: dict[str, Any] = dict(request.query)
    uploads: dict[str, Upload] = {}
    if request.body_exists:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise bad_request("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise bad_request("request body must be a JSON object")
            values.update(body)
        elif request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            for key, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    uploads[key] = Upload(value.filename, value.content_type, value.file.read())
                    values[key] = f"attach://{key}"  # a file sent straight in its field, like curl -F
                else:
                    values[key] = value
        else:
            raise bad_request(f"unsupported Content-Type {request.content_type!r}")
    return Params(values, uploads)
