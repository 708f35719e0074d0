"""Lago's official Python client against a running Billstream.

Creates a billable metric, a tax, a plan with a graduated and a package charge, a customer, a coupon (applied to the
customer) and a subscription; reads each back and checks it holds what was sent; issues a one-off invoice of an
add-on and reads the subscription's past usage; terminates the subscription.
Reads LAGO_API_URL and LAGO_API_KEY. Exits non-zero (with the reason) on the first mismatch or client error.
"""

import os
import sys

from lago_python_client.client import Client
from lago_python_client.models import (
    AddOn,
    BillableMetric,
    Charge,
    Coupon,
    Customer,
    CustomerBillingConfiguration,
    Plan,
    Subscription,
    Tax,
)
from lago_python_client.models.organization import Organization, OrganizationBillingConfiguration
from lago_python_client.models.applied_coupon import AppliedCoupon
from lago_python_client.models.charge import Charges
from lago_python_client.models.coupon import LimitationConfiguration
from lago_python_client.models.invoice import InvoiceFee, InvoiceFeesList, OneOffInvoice


def check(what, got, expected):
    if got != expected:
        sys.exit(f"{what}: expected {expected!r}, got {got!r}")


def main():
    client = Client(api_key=os.environ["LAGO_API_KEY"], api_url=os.environ["LAGO_API_URL"])

    metric = client.billable_metrics.create(
        BillableMetric(name="API calls", code="api_calls", aggregation_type="sum_agg", field_name="calls",
                       description="Calls to the API")
    )
    check("metric code", metric.code, "api_calls")
    found = client.billable_metrics.find("api_calls")
    check("metric read back", (found.lago_id, found.aggregation_type, found.field_name),
          (metric.lago_id, "sum_agg", "calls"))

    tax = client.taxes.create(Tax(name="VAT", code="vat_20", rate=20.0, description="Standard VAT"))
    check("tax", (tax.code, tax.rate), ("vat_20", 20.0))
    check("tax read back", client.taxes.find("vat_20").lago_id, tax.lago_id)

    graduated = {"graduated_ranges": [
        {"from_value": 0, "to_value": 1000, "per_unit_amount": "0", "flat_amount": "0"},
        {"from_value": 1001, "to_value": None, "per_unit_amount": "0.01", "flat_amount": "5"},
    ]}
    package = {"amount": "10", "package_size": 1000, "free_units": 100}
    plan = client.plans.create(Plan(
        name="Startup", code="startup", interval="monthly", amount_cents=9900, amount_currency="EUR",
        pay_in_advance=True, trial_period=14.0, tax_codes=["vat_20"],
        charges=Charges(__root__=[
            Charge(billable_metric_id=metric.lago_id, charge_model="graduated", properties=graduated,
                   invoice_display_name="API calls (graduated)"),
            Charge(billable_metric_id=metric.lago_id, code="api_calls_package", charge_model="package",
                   properties=package),
        ]),
    ))
    plan = client.plans.find("startup")
    check("plan", (plan.code, plan.interval, plan.amount_cents, plan.amount_currency, plan.pay_in_advance),
          ("startup", "monthly", 9900, "EUR", True))
    check("plan trial", plan.trial_period, 14.0)
    check("plan taxes", [t.code for t in plan.taxes.__root__], ["vat_20"])
    charges = plan.charges.__root__
    check("charge models", [c.charge_model for c in charges], ["graduated", "package"])
    ranges = charges[0].properties["graduated_ranges"]
    check("graduated ranges", [(r["from_value"], r["to_value"], r["per_unit_amount"], r["flat_amount"]) for r in ranges],
          [(0, 1000, "0", "0"), (1001, None, "0.01", "5")])
    check("package", {k: charges[1].properties[k] for k in package}, package)
    check("package charge code", charges[1].code, "api_calls_package")

    customer = client.customers.create(Customer(
        external_id="acme", name="Acme", email="billing@acme.example.com", currency="EUR", timezone="Europe/Paris",
        country="FR", tax_codes=["vat_20"], net_payment_term=30,
        billing_configuration=CustomerBillingConfiguration(invoice_grace_period=3, document_locale="fr"),
    ))
    found = client.customers.find("acme")
    check("customer", (found.lago_id, found.name, found.email, found.currency, found.timezone, found.country),
          (customer.lago_id, "Acme", "billing@acme.example.com", "EUR", "Europe/Paris", "FR"))
    check("customer billing", (found.billing_configuration.invoice_grace_period,
                               found.billing_configuration.document_locale), (3, "fr"))
    check("customer taxes", [t.code for t in found.taxes.__root__], ["vat_20"])

    coupon = client.coupons.create(Coupon(
        name="Launch", code="launch", coupon_type="percentage", percentage_rate=10.0, frequency="recurring",
        frequency_duration=3, expiration="no_expiration", reusable=False,
        applies_to=LimitationConfiguration(plan_codes=["startup"]),
    ))
    found = client.coupons.find("launch")
    check("coupon", (found.lago_id, found.coupon_type, found.percentage_rate, found.frequency_duration,
                     found.reusable, found.plan_codes),
          (coupon.lago_id, "percentage", 10.0, 3, False, ["startup"]))
    applied = client.applied_coupons.create(AppliedCoupon(external_customer_id="acme", coupon_code="launch"))
    check("applied coupon", (applied.coupon_code, applied.external_customer_id, applied.status),
          ("launch", "acme", "active"))

    subscription = client.subscriptions.create(Subscription(
        external_customer_id="acme", plan_code="startup", external_id="acme-startup", name="Acme on Startup",
        billing_time="anniversary", subscription_at="2026-01-15T00:00:00Z",
    ))
    check("subscription", (subscription.status, subscription.plan_code, subscription.billing_time),
          ("active", "startup", "anniversary"))
    found = client.subscriptions.find("acme-startup")
    check("subscription read back", (found.lago_id, found.external_customer_id, found.name, found.subscription_at),
          (subscription.lago_id, "acme", "Acme on Startup", "2026-01-15T00:00:00Z"))
    listed = client.subscriptions.find_all({"external_customer_id": "acme"})
    check("subscriptions listed", [s.external_id for s in listed["subscriptions"]], ["acme-startup"])

    more_calls(client)

    terminated = client.subscriptions.destroy("acme-startup")
    check("terminated", terminated.status, "terminated")
    print("lago-python-client flow: every call succeeded")


def more_calls(client):
    """Updates and lists of every resource, parsed by the client's own response models."""
    check("plan update", client.plans.update(Plan(name="Startup v2"), "startup").name, "Startup v2")
    check("tax update", client.taxes.update(Tax(rate=19.6), "vat_20").rate, 19.6)
    check("coupon update", client.coupons.update(Coupon(name="Launch!"), "launch").name, "Launch!")
    sub = client.subscriptions.update(Subscription(name="Renamed"), "acme-startup")
    check("subscription update", sub.name, "Renamed")
    add_on = client.add_ons.create(AddOn(name="Setup", code="setup", amount_cents=5000, amount_currency="EUR",
                                          tax_codes=["vat_20"]))
    check("add-on", (client.add_ons.find("setup").lago_id, add_on.amount_cents), (add_on.lago_id, 5000))
    org = client.organizations.update(Organization(
        default_currency="EUR", timezone="Europe/Paris", net_payment_term=15,
        billing_configuration=OrganizationBillingConfiguration(invoice_grace_period=2, document_locale="fr"),
    ))
    # The client's organization response model has no default_currency field.
    check("organization", (org.timezone, org.net_payment_term, org.billing_configuration.invoice_grace_period),
          ("Europe/Paris", 15, 2))
    for resource, key, expected in [
        (client.billable_metrics, "billable_metrics", 1), (client.taxes, "taxes", 1), (client.plans, "plans", 1),
        (client.customers, "customers", 1), (client.coupons, "coupons", 1), (client.add_ons, "add_ons", 1),
        (client.applied_coupons, "applied_coupons", 1),
    ]:
        page = resource.find_all()
        check(f"{key} listed", (len(page[key]), page["meta"]["total_count"]), (expected, expected))
    one_off_and_past_usage(client)
    check("add-on deleted", client.add_ons.destroy("setup").code, "setup")


def one_off_and_past_usage(client):
    """A one-off invoice of the add-on: 2.5 x 19.99 = 49.975 -> 49.98, its VAT (19.6 % since the update above)
    9.79608 -> 9.80; and the subscription's past usage (nothing billed yet)."""
    invoice = client.invoices.create(OneOffInvoice(
        external_customer_id="acme", currency="EUR",
        fees=InvoiceFeesList(__root__=[InvoiceFee(add_on_code="setup", units=2.5, unit_amount_cents=1999,
                                                  description="Setup, 2.5 days")]),
    ))
    check("one-off invoice", (invoice.invoice_type, invoice.status, invoice.fees_amount_cents,
                              invoice.taxes_amount_cents, invoice.total_amount_cents),
          ("one_off", "finalized", 4998, 980, 5978))
    check("one-off invoice read back", client.invoices.find(invoice.lago_id).number, invoice.number)
    past = client.customers.past_usage("acme", "acme-startup")
    check("past usage", (past["usage_periods"], past["meta"]["total_count"]), ([], 0))


if __name__ == "__main__":
    main()
