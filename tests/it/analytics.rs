//! Lago's analytics reports over a generated year: four customers in USD and EUR on monthly plans (in arrears with
//! usage, a coupon and VAT; in advance with usage and a charge paid in advance without invoice), a yearly plan paid
//! in advance and a quarterly plan in arrears, billed by the billing clock at each month boundary of 2025; some
//! invoices paid, some failed or pending, one offset and one refunded by a credit note; a one-off invoice (and a
//! voided one) this month. Every report's monthly figures are checked against numbers worked out by hand, then
//! the filters and the validation errors.
//!
//! The year is a fixed calendar year (2025) so that every figure, MRR's spreading over 30.44-day months included,
//! is a constant; the reports' "current month" is the API clock's (the system time), so the `months` filters and
//! the empty months are counted from it.

use billing::clock::tick;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::{Value, json};

use crate::support::TestApp;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A month as the reports render it, from `YYYY-MM`.
fn month(ym: &str) -> String {
    format!("{ym}-01T00:00:00.000Z")
}

/// The current month (the API clock's), as `YYYY-MM`.
fn this_month() -> String {
    Utc::now().format("%Y-%m").to_string()
}

/// The `months` value that reaches back to `ym` (`YYYY-MM`) from the current month.
fn months_back_to(ym: &str) -> i32 {
    let d = NaiveDate::parse_from_str(&format!("{ym}-01"), "%Y-%m-%d").unwrap();
    let now = Utc::now();
    (now.year() * 12 + now.month() as i32) - (d.year() * 12 + d.month() as i32) + 1
}

/// One run of the billing clock at `at`. The fees it writes are stamped with the database's time; in production
/// the clock runs at `at`, so they are dated back to it (invoiced usage and fees without invoice count by the
/// month a fee was created).
async fn bill(app: &TestApp, at: DateTime<Utc>) {
    tick(&app.pool, &*app.store, &app.tracker, at).await.expect("billing clock");
    sqlx::query("UPDATE fees SET created_at = $1 WHERE created_at > $1")
        .bind(at)
        .execute(&app.pool)
        .await
        .expect("date the fees");
}

async fn post(app: &TestApp, path: &str, body: Value) -> Value {
    app.post(path, &body).await.ok().body
}

/// The catalog, customers and subscriptions of the year; every subscription starts on 1 January 2025, calendar
/// billing, in UTC.
async fn catalog(app: &TestApp) {
    post(app, "/api/v1/taxes", json!({"tax": {"name": "VAT", "code": "vat", "rate": "20"}})).await;
    let metric = |code: &str| json!({"billable_metric": {"name": code, "code": code, "aggregation_type": "count_agg"}});
    let calls = post(app, "/api/v1/billable_metrics", metric("api_calls")).await["billable_metric"]["lago_id"].clone();
    let seats = post(app, "/api/v1/billable_metrics", metric("seats")).await["billable_metric"]["lago_id"].clone();
    let plan = |code: &str, interval: &str, cents: i64, currency: &str, advance: bool, charges: Value| {
        json!({"plan": {"name": code, "code": code, "interval": interval, "amount_cents": cents,
                        "amount_currency": currency, "pay_in_advance": advance, "charges": charges}})
    };
    let per_call = |amount: &str| {
        json!({"billable_metric_id": calls, "charge_model": "standard",
               "properties": {"amount": amount}})
    };
    for p in [
        plan("basic", "monthly", 5000, "USD", false, json!([per_call("0.10")])),
        plan("annual", "yearly", 120_000, "USD", true, json!([])),
        plan(
            "pro",
            "monthly",
            3000,
            "EUR",
            true,
            json!([per_call("0.05"), {"billable_metric_id": seats, "charge_model": "standard",
                                      "pay_in_advance": true, "invoiceable": false, "properties": {"amount": "5"}}]),
        ),
        plan("quarterly", "quarterly", 30_000, "EUR", false, json!([])),
    ] {
        post(app, "/api/v1/plans", p).await;
    }
    for c in [
        json!({"external_id": "us-1", "currency": "USD", "tax_codes": ["vat"], "net_payment_term": 45}),
        json!({"external_id": "us-2", "currency": "USD", "net_payment_term": 30}),
        json!({"external_id": "eu-1", "currency": "EUR"}),
        json!({"external_id": "eu-2", "currency": "EUR"}),
    ] {
        post(app, "/api/v1/customers", json!({ "customer": c })).await;
    }
    for (customer, plan, id) in [
        ("us-1", "basic", "s-basic"),
        ("us-2", "annual", "s-annual"),
        ("eu-1", "pro", "s-pro"),
        ("eu-2", "quarterly", "s-quarterly"),
    ] {
        post(
            app,
            "/api/v1/subscriptions",
            json!({"subscription": {"external_customer_id": customer, "plan_code": plan, "external_id": id,
                                    "billing_time": "calendar", "subscription_at": "2025-01-01T00:00:00Z"}}),
        )
        .await;
    }
    let coupon = json!({"coupon": {"name": "Welcome", "code": "welcome", "coupon_type": "fixed_amount",
        "amount_cents": 1000, "amount_currency": "USD", "frequency": "once", "expiration": "no_expiration"}});
    post(app, "/api/v1/coupons", coupon).await;
    post(
        app,
        "/api/v1/applied_coupons",
        json!({"applied_coupon": {"external_customer_id": "us-1", "coupon_code": "welcome"}}),
    )
    .await;
}

/// The usage of the year: in month `m` of January to November, `10 m` calls on the basic plan and 20 on the pro
/// plan.
fn calls() -> Vec<Value> {
    let mut events = Vec::new();
    for m in 1..=11u32 {
        let on = |day: u32| at(&format!("2025-{m:02}-{day:02}T12:00:00Z")).timestamp();
        for i in 0..10 * m {
            events.push(json!({"transaction_id": format!("b-{m}-{i}"), "external_subscription_id": "s-basic",
                               "code": "api_calls", "timestamp": on(10)}));
        }
        for i in 0..20 {
            events.push(json!({"transaction_id": format!("p-{m}-{i}"), "external_subscription_id": "s-pro",
                               "code": "api_calls", "timestamp": on(12)}));
        }
    }
    events
}

/// The invoice of `customer` issued on `date`.
async fn invoice(app: &TestApp, customer: &str, date: &str) -> String {
    let list = app.get(&format!("/api/v1/invoices?external_customer_id={customer}&per_page=100")).await.ok();
    let found = list.body["invoices"].as_array().unwrap().iter().find(|i| i["issuing_date"] == date);
    found.unwrap_or_else(|| panic!("no invoice of {customer} on {date}"))["lago_id"].as_str().unwrap().to_owned()
}

/// A credit note written directly: Billstream issues them only on terminations, dated today, and never refunds
/// (nothing is paid through it).
async fn credit_note(app: &TestApp, invoice: &str, refund: i64, offset: i64) {
    sqlx::query(
        "INSERT INTO credit_notes (id, organization_id, customer_id, invoice_id, sequential_id, number, issuing_date,
             reason, currency, total_amount_cents, credit_amount_cents, refund_amount_cents, offset_amount_cents,
             balance_amount_cents, taxes_amount_cents, precise_taxes_amount_cents, taxes_rate,
             sub_total_excluding_taxes_amount_cents, coupons_adjustment_amount_cents,
             precise_coupons_adjustment_amount_cents)
         SELECT gen_random_uuid(), organization_id, customer_id, id, 1, number || '-CN001', issuing_date, 'other',
                currency, $2 + $3, 0, $2, $3, 0, 0, 0, 0, $2 + $3, 0, 0
         FROM invoices WHERE id = $1::uuid",
    )
    .bind(invoice)
    .bind(refund)
    .bind(offset)
    .execute(&app.pool)
    .await
    .expect("credit note");
}

/// The invoices whose payment did not succeed (everything else is paid).
struct Unpaid {
    /// us-1's invoice of 1 March (February's), failed; due 15 April.
    basic_march: String,
    /// us-1's invoice of 1 December (November's), pending; due 15 January 2026.
    basic_december: String,
    /// eu-1's invoice of 1 June, failed.
    pro_june: String,
    /// eu-2's invoice of 1 October (the third quarter), pending, 50.00 of it offset by a credit note.
    quarterly_october: String,
    /// us-2's one-off invoice of today, pending, due in 30 days.
    one_off: String,
}

async fn a_year(app: &TestApp) -> Unpaid {
    sqlx::query("UPDATE organizations SET created_at = '2024-12-10T08:00:00Z'").execute(&app.pool).await.unwrap();
    catalog(app).await;
    app.post("/api/v1/events/batch", &json!({"events": calls()})).await.expect(200);
    // 1 January: the plans paid in advance bill their first period; then each month boundary bills the month
    // that ended (and the next month of the pro plan), with 15 March for the two seats of 10 March paid in advance.
    bill(app, at("2025-01-01T00:00:05Z")).await;
    for m in 2..=12 {
        if m == 4 {
            for tx in ["seat-1", "seat-2"] {
                let seat = json!({"transaction_id": tx, "external_subscription_id": "s-pro", "code": "seats",
                                  "timestamp": at("2025-03-10T09:00:00Z").timestamp()});
                app.post("/api/v1/events", &json!({ "event": seat })).await.expect(200);
            }
            bill(app, at("2025-03-15T00:00:00Z")).await;
        }
        bill(app, at(&format!("2025-{m:02}-01T00:00:05Z"))).await;
    }

    // This month: a one-off invoice of 250.00 to us-2 (net 30 days), and one of 500.00, voided.
    post(
        app,
        "/api/v1/add_ons",
        json!({"add_on": {"name": "Setup", "code": "setup", "amount_cents": 25_000, "amount_currency": "USD"}}),
    )
    .await;
    let one_off = |units: &str| {
        json!({"invoice": {"external_customer_id": "us-2", "currency": "USD",
                           "fees": [{"add_on_code": "setup", "units": units}]}})
    };
    let kept = post(app, "/api/v1/invoices", one_off("1")).await["invoice"]["lago_id"].as_str().unwrap().to_owned();
    let voided = post(app, "/api/v1/invoices", one_off("2")).await["invoice"]["lago_id"].as_str().unwrap().to_owned();
    app.post(&format!("/api/v1/invoices/{voided}/void"), &json!({})).await.ok();

    let unpaid = Unpaid {
        basic_march: invoice(app, "us-1", "2025-03-01").await,
        basic_december: invoice(app, "us-1", "2025-12-01").await,
        pro_june: invoice(app, "eu-1", "2025-06-01").await,
        quarterly_october: invoice(app, "eu-2", "2025-10-01").await,
        one_off: kept,
    };
    let pending = [&unpaid.basic_december, &unpaid.quarterly_october, &unpaid.one_off];
    for customer in ["us-1", "us-2", "eu-1", "eu-2"] {
        let list = app.get(&format!("/api/v1/invoices?external_customer_id={customer}&per_page=100")).await.ok();
        for i in list.body["invoices"].as_array().unwrap() {
            let id = i["lago_id"].as_str().unwrap().to_owned();
            let status = if id == unpaid.basic_march || id == unpaid.pro_june {
                "failed"
            } else if pending.contains(&&id) || i["status"] == "voided" {
                continue;
            } else {
                "succeeded"
            };
            app.put(&format!("/api/v1/invoices/{id}"), &json!({"invoice": {"payment_status": status}})).await.ok();
        }
    }
    // 200.00 of us-2's yearly invoice refunded; 50.00 of the third quarter's offset.
    credit_note(app, &invoice(app, "us-2", "2025-01-01").await, 20_000, 0).await;
    credit_note(app, &unpaid.quarterly_october, 0, 5000).await;
    unpaid
}

fn gross(body: &Value) -> Vec<(String, String, i64, i64)> {
    body["gross_revenues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["billing_entity_id"], Value::Null);
            let m = r["month"].as_str().unwrap()[..7].to_owned();
            (
                m,
                r["currency"].as_str().unwrap().to_owned(),
                r["amount_cents"].as_i64().unwrap(),
                r["invoices_count"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn rows(list: &[(&str, &str, i64, i64)]) -> Vec<(String, String, i64, i64)> {
    list.iter().map(|(m, c, a, n)| ((*m).to_owned(), (*c).to_owned(), *a, *n)).collect()
}

fn monthly(body: &Value, key: &str) -> Vec<(String, String, i64)> {
    body[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["month"].as_str().unwrap()[..7].to_owned(),
                r["currency"].as_str().unwrap().to_owned(),
                r["amount_cents"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn triples(list: &[(&str, &str, i64)]) -> Vec<(String, String, i64)> {
    list.iter().map(|(m, c, a)| ((*m).to_owned(), (*c).to_owned(), *a)).collect()
}

#[tokio::test]
async fn a_year_of_invoices_in_two_currencies_gives_the_monthly_figures_worked_out_by_hand() {
    let app = TestApp::new().await;
    let unpaid = a_year(&app).await;
    let now = this_month();

    // Gross revenue: each month's finalized invoices by issuing date.
    // - us-1 (basic, USD, 50.00 a month in arrears, 0.10 a call, 20 % VAT): the invoice of month u (issued on the
    //   1st of u + 1) bills 5000 + 100 u; January's (u = 1) also takes the 10.00 coupon: 5100 - 1000 = 4100, VAT
    //   820, 4920; the others 6000 + 120 u with VAT (6240 for February ... 7320 for November).
    // - us-2 (annual, USD): 1200.00 on 1 January, less the 200.00 refunded: 100000.
    // - eu-1 (pro, EUR, 30.00 a month in advance, 0.05 a call): 3000 on 1 January, then 3000 + 20 calls (100) on
    //   each 1st; in March also the two seats paid in advance without invoice (2 × 500, no invoice counted).
    // - eu-2 (quarterly, EUR, 300.00 in arrears): 30000 on 1 April, 1 July and 1 October.
    // - This month: us-2's one-off 250.00 (the voided one does not count).
    let expected_gross = rows(&[
        ("2025-01", "EUR", 3000, 1),
        ("2025-01", "USD", 100_000, 1),
        ("2025-02", "EUR", 3100, 1),
        ("2025-02", "USD", 4920, 1),
        ("2025-03", "EUR", 4100, 1),
        ("2025-03", "USD", 6240, 1),
        ("2025-04", "EUR", 33_100, 2),
        ("2025-04", "USD", 6360, 1),
        ("2025-05", "EUR", 3100, 1),
        ("2025-05", "USD", 6480, 1),
        ("2025-06", "EUR", 3100, 1),
        ("2025-06", "USD", 6600, 1),
        ("2025-07", "EUR", 33_100, 2),
        ("2025-07", "USD", 6720, 1),
        ("2025-08", "EUR", 3100, 1),
        ("2025-08", "USD", 6840, 1),
        ("2025-09", "EUR", 3100, 1),
        ("2025-09", "USD", 6960, 1),
        ("2025-10", "EUR", 33_100, 2),
        ("2025-10", "USD", 7080, 1),
        ("2025-11", "EUR", 3100, 1),
        ("2025-11", "USD", 7200, 1),
        ("2025-12", "EUR", 3100, 1),
        ("2025-12", "USD", 7320, 1),
        (&now, "USD", 25_000, 1),
    ]);
    let r = app.get("/api/v1/analytics/gross_revenue").await.ok();
    assert_eq!(gross(&r.body), expected_gross);
    assert_eq!(r.body["gross_revenues"][0]["month"], month("2025-01"));
    // One customer: us-1's invoices alone.
    let r = app.get("/api/v1/analytics/gross_revenue?external_customer_id=us-1").await.ok();
    let us1: Vec<_> =
        expected_gross.iter().filter(|g| g.1 == "USD" && g.0.as_str() > "2025-01" && g.0 != now).cloned().collect();
    assert_eq!(gross(&r.body), us1);
    // One currency (upper-cased).
    let r = app.get("/api/v1/analytics/gross_revenue?currency=eur").await.ok();
    let eur: Vec<_> = expected_gross.iter().filter(|g| g.1 == "EUR").cloned().collect();
    assert_eq!(gross(&r.body), eur);
    // December 2025 to this month; then this month alone.
    let r = app.get(&format!("/api/v1/analytics/gross_revenue?months={}", months_back_to("2025-12"))).await.ok();
    assert_eq!(gross(&r.body), expected_gross[22..].to_vec());
    let r = app.get("/api/v1/analytics/gross_revenue?months=1&billing_entity_code=ignored").await.ok();
    assert_eq!(gross(&r.body), expected_gross[24..].to_vec());

    // Invoiced usage: the call fees, by the month they were billed, newest first, biggest first. us-1's month u is
    // billed on the 1st of u + 1: 100 u, except January's 100 less its coupon share 1000 × 100 / 5100 = 19.60784:
    // 80.39216, 80. eu-1's 20 calls: 100 each month. The seats' fees have no invoice.
    let r = app.get("/api/v1/analytics/invoiced_usage").await.ok();
    let usage: Vec<(String, String, String, i64)> = r.body["invoiced_usages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let m = u["month"].as_str().unwrap()[..7].to_owned();
            (
                m,
                u["code"].as_str().unwrap().to_owned(),
                u["currency"].as_str().unwrap().to_owned(),
                u["amount_cents"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut expected_usage = Vec::new();
    for m in (3..=12).rev() {
        expected_usage.push((format!("2025-{m:02}"), "api_calls".to_owned(), "USD".to_owned(), 100 * (m - 1)));
        expected_usage.push((format!("2025-{m:02}"), "api_calls".to_owned(), "EUR".to_owned(), 100));
    }
    expected_usage.push(("2025-02".into(), "api_calls".into(), "EUR".into(), 100));
    expected_usage.push(("2025-02".into(), "api_calls".into(), "USD".into(), 80));
    assert_eq!(usage, expected_usage);
    assert_eq!(usage[0].3, 1100, "November's 110 calls at 0.10");
    let r = app
        .get(&format!("/api/v1/analytics/invoiced_usage?currency=EUR&months={}", months_back_to("2025-10")))
        .await
        .ok();
    assert_eq!(
        monthly(&r.body, "invoiced_usages"),
        triples(&[("2025-12", "EUR", 100), ("2025-11", "EUR", 100), ("2025-10", "EUR", 100)])
    );

    // MRR: subscription fees less coupons plus taxes, spread by plan interval.
    // USD:
    // - basic, monthly: in the month of its invoice. February: 5000 - 980.39216 (the coupon's share,
    //   1000 × 5000 / 5100) + VAT 804 (20 % of 4019.60784, rounded) = 4823.60784; March to December 6000.
    // - annual, in advance, issued 1 January for 1 Jan 00:00 - 31 Dec 23:59:59: 364 days 23 h 59 min =
    //   364.99931 days / 30.44 = 11.99078 billed months, so 12 months from January. January has all its 31 days
    //   left: 120000 / 11.99078 = 10007.69027 in January to November; December takes the rest,
    //   120000 - 11 × 10007.69027 = 9915.40699.
    // So January 10007.69 -> 10008, February 14831.30 -> 14831, March-November 16007.69 -> 16008, December
    // 15915.41 -> 15915.
    // EUR:
    // - pro, monthly: 3000 every month from January to December (the fee of each 1st).
    // - quarterly, in arrears, 30000 spread back from its invoice's month:
    //   Q1 (1 Apr; 89 d 23 h 59 min = 2.95661 months): April and March 10146.74496, February 9706.51008;
    //   Q2 (1 Jul; 90 d 23:59 = 2.98946 months): July and June 10035.24142, May 9929.51717;
    //   Q3 (1 Oct; 91 d 23:59 = 3.02232 months, so four months): October, September and August 9926.16188,
    //   July the rest, 30000 - 3 × 9926.16188 = 221.51435.
    // So February 12706.51 -> 12707, March and April 13146.74 -> 13147, May 12929.52 -> 12930, June 13035.24
    // -> 13035, July 3000 + 10035.24142 + 221.51435 = 13256.76 -> 13257, August-October 12926.16 -> 12926.
    let expected_mrr = triples(&[
        ("2025-01", "EUR", 3000),
        ("2025-01", "USD", 10_008),
        ("2025-02", "EUR", 12_707),
        ("2025-02", "USD", 14_831),
        ("2025-03", "EUR", 13_147),
        ("2025-03", "USD", 16_008),
        ("2025-04", "EUR", 13_147),
        ("2025-04", "USD", 16_008),
        ("2025-05", "EUR", 12_930),
        ("2025-05", "USD", 16_008),
        ("2025-06", "EUR", 13_035),
        ("2025-06", "USD", 16_008),
        ("2025-07", "EUR", 13_257),
        ("2025-07", "USD", 16_008),
        ("2025-08", "EUR", 12_926),
        ("2025-08", "USD", 16_008),
        ("2025-09", "EUR", 12_926),
        ("2025-09", "USD", 16_008),
        ("2025-10", "EUR", 12_926),
        ("2025-10", "USD", 16_008),
        ("2025-11", "EUR", 3000),
        ("2025-11", "USD", 16_008),
        ("2025-12", "EUR", 3000),
        ("2025-12", "USD", 15_915),
    ]);
    let r = app.get("/api/v1/analytics/mrr").await.ok();
    assert_eq!(monthly(&r.body, "mrrs"), expected_mrr);
    let r = app.get("/api/v1/analytics/mrr?currency=usd").await.ok();
    let usd: Vec<_> = expected_mrr.iter().filter(|m| m.1 == "USD").cloned().collect();
    assert_eq!(monthly(&r.body, "mrrs"), usd);
    let r = app.get(&format!("/api/v1/analytics/mrr?months={}", months_back_to("2025-12"))).await.ok();
    assert_eq!(monthly(&r.body, "mrrs"), expected_mrr[22..].to_vec());

    // Invoice collection: the finalized invoices by issuing month, payment status and currency (the amounts of the
    // gross revenue before refunds and without the seats), every other month of the window as a zero line.
    let r = app.get("/api/v1/analytics/invoice_collection").await.ok();
    let lines: Vec<(String, String, String, i64, i64)> = r.body["invoice_collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let text = |k: &str| l[k].as_str().unwrap_or("-").to_owned();
            (
                text("month")[..7].to_owned(),
                text("payment_status"),
                text("currency"),
                l["invoices_count"].as_i64().unwrap(),
                l["amount_cents"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut expected_lines: Vec<(String, String, String, i64, i64)> = [
        ("2024-12", "-", "-", 0, 0),
        ("2025-01", "succeeded", "EUR", 1, 3000),
        ("2025-01", "succeeded", "USD", 1, 120_000),
        ("2025-02", "succeeded", "EUR", 1, 3100),
        ("2025-02", "succeeded", "USD", 1, 4920),
        ("2025-03", "failed", "USD", 1, 6240),
        ("2025-03", "succeeded", "EUR", 1, 3100),
        ("2025-04", "succeeded", "EUR", 2, 33_100),
        ("2025-04", "succeeded", "USD", 1, 6360),
        ("2025-05", "succeeded", "EUR", 1, 3100),
        ("2025-05", "succeeded", "USD", 1, 6480),
        ("2025-06", "failed", "EUR", 1, 3100),
        ("2025-06", "succeeded", "USD", 1, 6600),
        ("2025-07", "succeeded", "EUR", 2, 33_100),
        ("2025-07", "succeeded", "USD", 1, 6720),
        ("2025-08", "succeeded", "EUR", 1, 3100),
        ("2025-08", "succeeded", "USD", 1, 6840),
        ("2025-09", "succeeded", "EUR", 1, 3100),
        ("2025-09", "succeeded", "USD", 1, 6960),
        ("2025-10", "pending", "EUR", 1, 30_000),
        ("2025-10", "succeeded", "EUR", 1, 3100),
        ("2025-10", "succeeded", "USD", 1, 7080),
        ("2025-11", "succeeded", "EUR", 1, 3100),
        ("2025-11", "succeeded", "USD", 1, 7200),
        ("2025-12", "pending", "USD", 1, 7320),
        ("2025-12", "succeeded", "EUR", 1, 3100),
    ]
    .iter()
    .map(|(m, s, c, n, a)| ((*m).to_owned(), (*s).to_owned(), (*c).to_owned(), *n, *a))
    .collect();
    // The months of 2026 before this one have no invoice.
    let mut empty = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    while empty.format("%Y-%m").to_string() < now {
        expected_lines.push((empty.format("%Y-%m").to_string(), "-".into(), "-".into(), 0, 0));
        empty = empty.checked_add_months(chrono::Months::new(1)).unwrap();
    }
    expected_lines.push((now.clone(), "pending".into(), "USD".into(), 1, 25_000));
    assert_eq!(lines, expected_lines);
    let r = app.get("/api/v1/analytics/invoice_collection?currency=USD&months=1").await.ok();
    assert_eq!(
        r.body["invoice_collections"],
        json!([{"month": month(&now), "payment_status": "pending", "invoices_count": 1, "amount_cents": 25_000,
                 "currency": "USD"}])
    );
    // With a currency, the months without invoices are left out.
    let r = app.get("/api/v1/analytics/invoice_collection?currency=eur").await.ok();
    let eur: Vec<_> = expected_lines.iter().filter(|l| l.2 == "EUR").collect();
    let got: Vec<(&str, i64)> = r.body["invoice_collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["payment_status"].as_str().unwrap(), l["amount_cents"].as_i64().unwrap()))
        .collect();
    assert_eq!(got, eur.iter().map(|l| (l.1.as_str(), l.4)).collect::<Vec<_>>());

    // Overdue balance: pending or failed invoices due before today, by due month. us-1's are due 45 days after
    // issue: February's (6240, failed) on 15 April, November's (7320, pending) on 15 January 2026. eu-1's June
    // invoice (3100, failed) on 1 June; eu-2's third quarter (30000 pending, 5000 offset) on 1 October. The one-off
    // is due in 30 days: not overdue.
    let overdue = |body: &Value| -> Vec<(String, String, i64, Vec<String>)> {
        body["overdue_balances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                assert_eq!(o["billing_entity_id"], Value::Null);
                let ids =
                    o["lago_invoice_ids"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_owned()).collect();
                (
                    o["month"].as_str().unwrap()[..7].to_owned(),
                    o["currency"].as_str().unwrap().to_owned(),
                    o["amount_cents"].as_i64().unwrap(),
                    ids,
                )
            })
            .collect()
    };
    let expected_overdue = vec![
        ("2025-04".to_owned(), "USD".to_owned(), 6240, vec![unpaid.basic_march.clone()]),
        ("2025-06".to_owned(), "EUR".to_owned(), 3100, vec![unpaid.pro_june.clone()]),
        ("2025-10".to_owned(), "EUR".to_owned(), 25_000, vec![unpaid.quarterly_october.clone()]),
        ("2026-01".to_owned(), "USD".to_owned(), 7320, vec![unpaid.basic_december.clone()]),
    ];
    let r = app.get("/api/v1/analytics/overdue_balance").await.ok();
    assert_eq!(overdue(&r.body), expected_overdue);
    let r = app.get("/api/v1/analytics/overdue_balance?external_customer_id=us-1").await.ok();
    assert_eq!(overdue(&r.body), vec![expected_overdue[0].clone(), expected_overdue[3].clone()]);
    let r = app.get("/api/v1/analytics/overdue_balance?currency=EUR").await.ok();
    assert_eq!(overdue(&r.body), expected_overdue[1..3].to_vec());
    let r = app.get(&format!("/api/v1/analytics/overdue_balance?months={}", months_back_to("2026-01"))).await.ok();
    assert_eq!(overdue(&r.body), expected_overdue[3..].to_vec());
    let r = app.get("/api/v1/analytics/overdue_balance?external_customer_id=nobody").await.ok();
    assert_eq!(r.body, json!({"overdue_balances": []}));
}

#[tokio::test]
async fn a_new_organization_has_empty_reports_and_bad_filters_are_lagos_422() {
    let app = TestApp::new().await;
    for (path, key) in [
        ("gross_revenue", "gross_revenues"),
        ("invoiced_usage", "invoiced_usages"),
        ("mrr", "mrrs"),
        ("overdue_balance", "overdue_balances"),
    ] {
        let r = app.get(&format!("/api/v1/analytics/{path}")).await.ok();
        assert_eq!(r.body, json!({ key: [] }), "{path}");
    }
    // Invoice collection lists the organization's one month, empty.
    let r = app.get("/api/v1/analytics/invoice_collection").await.ok();
    assert_eq!(
        r.body,
        json!({"invoice_collections": [{"month": month(&this_month()), "invoices_count": 0, "amount_cents": 0}]})
    );

    for path in ["gross_revenue", "invoiced_usage", "mrr", "invoice_collection", "overdue_balance"] {
        let r = app.get(&format!("/api/v1/analytics/{path}?months=abc&currency=EURO")).await.expect(422);
        assert_eq!(
            r.body,
            json!({"status": 422, "error": "Unprocessable Entity", "code": "validation_errors",
                   "error_details": {"currency": ["value_is_invalid"], "months": ["value_is_invalid"]}}),
            "{path}"
        );
    }
    app.get("/api/v1/analytics/mrr?months=-2").await.ok();
}
