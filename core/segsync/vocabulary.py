"""Words a record may use, importing nothing: the consent methods and the known contact attributes.

Apart from :mod:`segsync.model` (which re-exports them) so that what every command's start
loads (the built-in consent policies, a connector's module) can name them without importing
pydantic. Public as ``segsync.CONSENT_METHODS`` and ``segsync.KNOWN_ATTRIBUTES``.
"""

CONSENT_METHODS = (
    "form",
    "import",
    "api",
    "double_opt_in",
    "sync",
    "admin",
    "purchase",
    "inquiry",
    "email_link",
    "bounce",
    "complaint",
)

KNOWN_ATTRIBUTES = (
    "first_name",
    "last_name",
    "company",
    "job_title",
    "department",
    "industry",
    "company_size",
    "country",
    "timezone",
    "lifecycle_stage",
    "created_at",
)
