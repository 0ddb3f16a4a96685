"""Everything the bot says, as charity-editable data, with the loader that checks it."""

from responses.catalog import Problem, Service
from responses.loader import Responses, ResponsesError, check
from responses.render import Rendered, RenderedOption, Renderer

__all__ = [
    "Problem",
    "Rendered",
    "RenderedOption",
    "Renderer",
    "Responses",
    "ResponsesError",
    "Service",
    "check",
]
