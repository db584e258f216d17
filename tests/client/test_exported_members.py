import inspect

import jobbroker_client


def test_all_exports_are_importable_and_public_names_are_all_exported():
    exported = set(jobbroker_client.__all__)
    # Public submodules (jobbroker_client.webhooks) appear as attributes once imported; they are not names.
    public = {
        name
        for name in dir(jobbroker_client)
        if not name.startswith("_") and not inspect.ismodule(getattr(jobbroker_client, name))
    }
    assert public == exported - {"__version__"}
    for name in exported:
        assert getattr(jobbroker_client, name) is not None


def test_contract_names_are_exported():
    for name in (
        "Client",
        "AsyncClient",
        "Worker",
        "PermanentError",
        "Retry",
        "JobbrokerError",
        "LeaseLost",
        "JobNotFound",
        "PayloadTooLarge",
        "ValidationError",
        "Unauthorized",
        "Forbidden",
        "DatabaseUnavailable",
        "Conflict",
    ):
        assert name in jobbroker_client.__all__
