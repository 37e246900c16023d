"""User functions: Python callables the server describes with JSON schemas and calls.

A module in a configured functions folder marks its functions with :func:`function`
(or lists them in a module-level ``FUNCTIONS``)::

    from lollms_server.functions import function

    @function
    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> dict:
        '''Current weather of a city.

        Args:
            city: The city's name.
            unit: Temperature unit.
        '''
"""

from lollms_server.functions.model import FunctionDef, function

__all__ = ["FunctionDef", "function"]
