"""The built-in event vocabulary (see ``docs/records.md``)."""

from __future__ import annotations

from segsync.hookspecs import hookimpl

EVENT_TYPES = {
    "email.sent": "A marketing email was sent; properties: campaign_id, subject",
    "email.delivered": "The receiving server accepted the email; properties: campaign_id",
    "email.opened": "An email was opened; properties: campaign_id",
    "email.clicked": "A link in an email was clicked; properties: campaign_id, url",
    "email.bounced": "An email bounced; properties: campaign_id, bounce_type (hard|soft)",
    "email.complained": "The recipient marked an email as spam; properties: campaign_id",
    "email.unsubscribed": "The recipient unsubscribed through an email; properties: campaign_id",
    "order.completed": "An order was paid; value and currency (ISO 4217), properties: order_id, items",
    "order.refunded": "An order was refunded; value and currency",
    "page.viewed": "A web page was viewed; url and category",
    "product.viewed": "A product page was viewed; url and category, properties: product_id",
    "cart.added": "A product was added to the cart; value, currency, properties: product_id",
    "cart.abandoned": "A cart was left without checkout; value and currency",
    "form.submitted": "A form was submitted; properties: form_id",
    "lead_magnet.downloaded": "A lead magnet (guide, e-book) was downloaded; properties: asset",
    "trial.started": "A product trial started",
    "subscription.started": "A paid subscription started; value and currency",
    "subscription.cancelled": "A paid subscription was cancelled",
}


@hookimpl
def segsync_register_event_types(register):
    for name, description in EVENT_TYPES.items():
        register(name, description)
