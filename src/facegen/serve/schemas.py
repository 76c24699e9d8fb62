"""The service's wire types as OpenAPI shows them: query and body fields, response bodies and the face headers.

Every type here is fixed except the two shaped by the settings (allowed sizes, batch bounds, defaults), which
:func:`size_query`, :func:`size_field` and :func:`batch_request_model` build per app.
"""

# No `from __future__ import annotations`: pydantic must see the types built inside batch_request_model.
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from facegen.attributes import AGE_BINS, ETHNICITIES, GENDERS
from facegen.serve.feedback import MAX_RATING, MIN_RATING
from facegen.serve.inference import MAX_SEED
from facegen.serve.settings import ServeSettings

HEADER_MODEL_NAME = "X-Facegen-Model-Name"
HEADER_MODEL_VERSION = "X-Facegen-Model-Version"
HEADER_SEED = "X-Facegen-Seed"
HEADER_SEEDS = "X-Facegen-Seeds"
HEADER_TRUNCATION = "X-Facegen-Truncation"
HEADER_SIZE = "X-Facegen-Size"
HEADER_ATTRIBUTES = "X-Facegen-Attributes"

Seed = Annotated[int, Field(ge=0, le=MAX_SEED, description="Latent seed; the same seed gives the same face")]
Truncation = Annotated[
    float,
    Field(ge=0.0, le=1.0, allow_inf_nan=False, description="psi of the truncation trick on z: 1 = none, 0 = mean face"),
]
ImageFormatField = Literal["jpeg", "png"]
Version = Annotated[
    str, Field(pattern=r"^[1-9][0-9]{0,9}$", description="Registry version of the model", examples=["3"])
]


# The vocabulary of facegen.attributes as types: a value outside it is a 422 that lists the allowed values.
Gender = Literal[GENDERS]  # type: ignore[valid-type]
AgeBin = Literal[AGE_BINS]  # type: ignore[valid-type]
Ethnicity = Literal[ETHNICITIES]  # type: ignore[valid-type]


class Attributes(BaseModel):
    """Attributes requested from a conditional generator (the vocabulary of facegen.attributes)."""

    model_config = ConfigDict(extra="forbid")
    gender: Gender | None = None
    age_bin: AgeBin | None = None
    ethnicity: Ethnicity | None = None

    def requested(self) -> dict[str, str]:
        return {key: value for key, value in self.model_dump().items() if value is not None}


GenderQuery = Annotated[Gender | None, Query(description="Requested gender; any when omitted")]
AgeBinQuery = Annotated[AgeBin | None, Query(description="Requested age bin (70+ URL-encoded: 70%2B); any if omitted")]
EthnicityQuery = Annotated[Ethnicity | None, Query(description="Requested ethnicity; any when omitted")]


def _size_checker(allowed: tuple[int, ...]) -> Callable[[int], int]:
    def check(size: int) -> int:
        if size not in allowed:
            raise ValueError(f"size must be one of {', '.join(map(str, allowed))} (got {size})")
        return size

    return check


def size_query(allowed: tuple[int, ...]) -> Any:
    """The ``size`` query parameter: one of ``allowed`` (listed as an enum), else a 422 that names them."""
    return Annotated[
        int,
        Query(description=f"One of {list(allowed)}", json_schema_extra={"enum": list(allowed)}),
        AfterValidator(_size_checker(allowed)),
    ]


def size_field(allowed: tuple[int, ...]) -> Any:
    """The ``size`` field of a JSON body: one of ``allowed`` (listed as an enum), else a 422 that names them."""
    return Annotated[
        int,
        Field(
            description=f"Side of the square image; one of {list(allowed)}",
            json_schema_extra={"enum": list(allowed)},
        ),
        AfterValidator(_size_checker(allowed)),
    ]


def batch_request_model(settings: ServeSettings) -> type[BaseModel]:
    """The body of ``POST /generate``; built per app because its bounds and defaults are settings."""
    Size = size_field(settings.allowed_sizes)
    max_batch = settings.max_batch

    class GenerateBatchRequest(BaseModel):
        """A batch: explicit ``seeds``, or ``count`` faces from fresh random seeds (returned with the images)."""

        model_config = ConfigDict(
            extra="forbid",
            # Documents the validator below in the schema: not both an array of seeds and an integer count.
            json_schema_extra={
                "not": {
                    "required": ["seeds", "count"],
                    "properties": {"seeds": {"type": "array"}, "count": {"type": "integer"}},
                }
            },
        )
        seeds: list[Seed] | None = Field(None, min_length=1, max_length=max_batch)
        count: int | None = Field(
            None, ge=1, le=max_batch, description="Faces from random seeds when seeds is not given"
        )
        truncation: Truncation = settings.default_truncation
        size: Size = settings.default_size  # type: ignore[valid-type]
        format: ImageFormatField = "jpeg"
        attributes: Attributes | None = None

        @model_validator(mode="after")
        def _seeds_or_count(self):
            if self.seeds is not None and self.count is not None:
                raise ValueError("give either seeds or count, not both")
            return self

    return GenerateBatchRequest


class GeneratedFace(BaseModel):
    seed: int
    truncation: float
    size: int
    format: ImageFormatField
    media_type: str
    data_base64: str = Field(description="The encoded image, base64")


class GenerateBatchResponse(BaseModel):
    model_name: str
    model_version: str
    images: list[GeneratedFace]


class FeedbackIn(BaseModel):
    """A rating of one face, identified by the version, seed, truncation (and attributes) from its response headers."""

    model_config = ConfigDict(extra="forbid")
    model_version: Version
    seed: Seed
    truncation: Truncation = 1.0
    attributes: Attributes | None = Field(None, description="The attributes the face was generated with, if any")
    rating: int = Field(ge=MIN_RATING, le=MAX_RATING, description=f"{MIN_RATING} (bad) .. {MAX_RATING} (great)")
    comment: str | None = Field(None, max_length=2000)


# A stored rating as the API returns it: a FeedbackRecord without its comment.
class FeedbackOut(BaseModel):
    id: int
    model_name: str
    model_version: str
    seed: int
    truncation: float
    attributes: dict[str, str]
    rating: int
    created_at: str


class ReloadOut(BaseModel):
    changed: bool
    previous_version: str | None
    model_version: str | None
    alias_version: str | None
    error: str | None = None


class Health(BaseModel):
    status: str


class RefusedChampion(BaseModel):
    """The version the alias points at that the champion rule refuses (:func:`facegen.gates.champion_acceptable`)."""

    version: str
    reason: str


class Readiness(BaseModel):
    status: str
    model_name: str
    alias: str
    model_version: str | None = None
    reason: str | None = None
    refused: RefusedChampion | None = None  # the alias's version, refused; the served model (if any) stays
