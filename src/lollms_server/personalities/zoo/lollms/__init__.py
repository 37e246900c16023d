"""The ``lollms`` names zoo processors import, backed by lollms_server.

Processors see this package as ``lollms`` (see ``zoo.import_processor``); the real ``lollms``
package, when installed, is neither imported nor shadowed.
"""
