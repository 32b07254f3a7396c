"""What a model call cost: the API's own figure where it gave one, else the price table.

The table is genai-prices' (maintained by Pydantic, updated as vendors change their prices and
released often); AGENT_PRICES overrides it per model. A model found in neither is metered by
its tokens only, its cost unknown (None), unless its API reported the cost itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any

from jobs.boundary import Api, Usage

# Per million tokens, input and output. Cached input is priced as input by an override.
Prices = Mapping[str, tuple[float, float]]

# genai-prices' provider ids for the APIs the gateway passes.
PROVIDERS: dict[Api, str] = {
    "anthropic": "anthropic",
    "openai": "openai",
    "gemini": "google",
    "openrouter": "openrouter",
}


# The APIs that report each call's cost themselves (OpenRouter's `usage.cost`, which the gateway
# asks for), by name: any model of theirs can be priced, by its answer.
SELF_PRICED: dict[Api, str] = {"openrouter": "OpenRouter"}


def cost_of(usage: Usage, api: Api, overrides: Prices) -> float | None:
    """USD, or None when neither the API, AGENT_PRICES nor the table knows the model, or the
    answer said nothing of what the call used."""
    if not usage.said:
        return None
    if usage.cost is not None:
        return usage.cost
    model = usage.model.removeprefix("models/")
    override = overrides.get(model) or overrides.get(model.rsplit("/", 1)[-1])
    if override is not None:
        given = usage.input + usage.cached + usage.cache_write
        return (given * override[0] + usage.output * override[1]) / 1_000_000
    return _table(model, PROVIDERS[api], usage)


def priced(model: str, api: Api, overrides: Prices) -> bool:
    """Whether a call to `model` can be priced before its answer says what it used."""
    return cost_of(Usage(model), api, overrides) is not None


def _table(model: str, provider: str, usage: Usage) -> float | None:
    prices = _genai_prices()
    try:
        calculation = prices.calc_price(
            prices.Usage(
                input_tokens=usage.input + usage.cached + usage.cache_write,
                cache_read_tokens=usage.cached,
                cache_write_tokens=usage.cache_write,
                output_tokens=usage.output,
            ),
            model,
            provider_id=provider,
        )
    except LookupError:
        return None
    total: Decimal = calculation.total_price
    return float(total)


@cache
def _genai_prices() -> Any:
    # A second to import (its table is one large module): only when a call is priced.
    import genai_prices

    return genai_prices
