//! Invoices end to end through HTTP on real servers, the main flows in both event-store modes (Postgres alone, and
//! the broker, the sink and ClickHouse): a catalog with several charge models, a customer in New York, usage events
//! (some just outside the billed month), a coupon and a tax; the billing clock bills the month that ended and every
//! fee, tax, coupon and total is checked against numbers worked out by hand. Then current usage, a second clock run
//! that bills nothing, termination (the last period at once), finalize/void, and the clock on calendar and
//! anniversary subscriptions crossing their boundaries.

use billing::clock::{Tick, tick};
use billing::domain::periods::{local_date, local_midnight};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde_json::{Value, json};

use crate::support::{Mode, TestApp, in_both_modes};

fn ny() -> chrono_tz::Tz {
    "America/New_York".parse().unwrap()
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap()
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

async fn catalog(app: &TestApp) {
    app.post("/api/v1/taxes", &json!({"tax": {"name": "VAT", "code": "vat", "rate": "20"}})).await.ok();
    for m in [
        json!({"name": "API calls", "code": "api_calls", "aggregation_type": "count_agg"}),
        json!({"name": "Storage", "code": "storage", "aggregation_type": "sum_agg", "field_name": "gb"}),
        json!({"name": "Seats", "code": "seats", "aggregation_type": "unique_count_agg", "field_name": "user"}),
        json!({"name": "Region calls", "code": "region_calls", "aggregation_type": "count_agg",
               "filters": [{"key": "region", "values": ["eu", "us"]}]}),
    ] {
        app.post("/api/v1/billable_metrics", &json!({ "billable_metric": m })).await.ok();
    }
    let id = |code: &str| {
        let code = code.to_owned();
        async move {
            let r = app.get(&format!("/api/v1/billable_metrics/{code}")).await.ok();
            r.body["billable_metric"]["lago_id"].as_str().unwrap().to_owned()
        }
    };
    let (calls, storage, seats, region) =
        (id("api_calls").await, id("storage").await, id("seats").await, id("region_calls").await);
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "Startup", "code": "startup", "interval": "monthly", "amount_cents": 4900,
            "amount_currency": "EUR", "pay_in_advance": false, "charges": [
                {"billable_metric_id": calls, "charge_model": "graduated", "properties": {"graduated_ranges": [
                    {"from_value": 0, "to_value": 100, "per_unit_amount": "0", "flat_amount": "0"},
                    {"from_value": 101, "to_value": null, "per_unit_amount": "0.01", "flat_amount": "0"}]}},
                {"billable_metric_id": storage, "charge_model": "package",
                 "properties": {"amount": "5", "package_size": 10, "free_units": 0}},
                {"billable_metric_id": seats, "charge_model": "standard", "properties": {"amount": "3.5"}},
                {"billable_metric_id": region, "charge_model": "standard", "properties": {"amount": "0.1"},
                 "filters": [
                    {"invoice_display_name": "Europe", "values": {"region": ["eu"]}, "properties": {"amount": "0.02"}},
                    {"values": {"region": ["us"]}, "properties": {"amount": "0.05"}}]}]}}),
    )
    .await
    .ok();
}

fn event(tx: &str, code: &str, at: DateTime<Utc>, properties: Value) -> Value {
    json!({"transaction_id": tx, "external_subscription_id": "sub-1", "code": code,
           "timestamp": format!("{}.{:06}", at.timestamp(), at.timestamp_subsec_micros()), "properties": properties})
}

/// One run of the billing clock at `at`, after the sink has caught up in scale mode.
async fn bill(app: &TestApp, at: DateTime<Utc>) -> Tick {
    app.settle().await;
    tick(&app.pool, &*app.store, &app.tracker, at).await.expect("billing clock")
}

in_both_modes!(
    the_clock_bills_the_month_that_ended_to_the_cent_then_termination_bills_the_rest,
    estimate_fees_prices_one_more_event_on_a_charge_paid_in_advance,
    a_draft_is_computed_again_on_refresh_and_on_finalize_with_late_events,
);

fn fee<'a>(invoice: &'a Value, code: &str, filter: Option<&str>) -> &'a Value {
    invoice["fees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["item"]["code"] == code && f["item"]["filter_invoice_display_name"].as_str() == filter)
        .unwrap_or_else(|| panic!("no fee {code} {filter:?} in {invoice}"))
}

async fn the_clock_bills_the_month_that_ended_to_the_cent_then_termination_bills_the_rest(mode: Mode) {
    let app = TestApp::in_mode(mode).await;
    catalog(&app).await;
    let tz = ny();
    let now = Utc::now();
    // The billed month: the calendar month before this one, in New York.
    let this_month = first_of_month(local_date(tz, now));
    let billed = first_of_month(this_month.pred_opt().unwrap());
    let (start, end) = (local_midnight(tz, billed), local_midnight(tz, this_month));
    app.post(
        "/api/v1/customers",
        &json!({"customer": {"external_id": "acme", "name": "Acme", "currency": "EUR", "timezone": "America/New_York",
                             "tax_codes": ["vat"]}}),
    )
    .await
    .ok();
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "acme", "plan_code": "startup", "external_id": "sub-1",
                                 "billing_time": "calendar", "subscription_at": iso(start)}}),
    )
    .await
    .expect(200);
    app.post(
        "/api/v1/coupons",
        &json!({"coupon": {"name": "Welcome", "code": "welcome", "coupon_type": "fixed_amount", "amount_cents": 1000,
                           "amount_currency": "EUR", "frequency": "once", "expiration": "no_expiration"}}),
    )
    .await
    .ok();
    app.post(
        "/api/v1/applied_coupons",
        &json!({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "welcome"}}),
    )
    .await
    .ok();

    let mut events = Vec::new();
    let day = |d: i64, h: i64| start + Duration::days(d) + Duration::hours(h);
    // 250 calls in the month; one a microsecond before it and one at its very end boundary do not count.
    for i in 0..250 {
        events.push(event(&format!("c{i}"), "api_calls", day(i % 27, 12), json!({})));
    }
    events.push(event("before", "api_calls", start - Duration::microseconds(1), json!({})));
    events.push(event("after", "api_calls", end, json!({})));
    for (i, gb) in ["12.5", "7.25", "30"].iter().enumerate() {
        events.push(event(&format!("s{i}"), "storage", day(3 + i as i64, 1), json!({"gb": gb})));
    }
    for (i, user) in ["u1", "u2", "u3", "u1"].iter().enumerate() {
        events.push(event(&format!("u{i}"), "seats", day(5, i as i64), json!({"user": user})));
    }
    for (i, region) in ["eu", "eu", "eu", "us", "us"].iter().enumerate() {
        events.push(event(&format!("r{i}"), "region_calls", day(6, i as i64), json!({"region": region})));
    }
    events.push(event("r-none", "region_calls", day(7, 0), json!({})));
    app.post("/api/v1/events/batch", &json!({"events": events})).await.expect(200);
    // A retried event (same transaction id) changes nothing.
    app.post("/api/v1/events", &json!({"event": event("c0", "api_calls", day(0, 12), json!({}))})).await.expect(200);

    let first = bill(&app, now).await;
    assert_eq!((first.invoices, first.failed), (1, 0));
    let again = bill(&app, now).await;
    assert_eq!(again.invoices, 0, "a second run of the clock bills nothing new");

    let list = app.get("/api/v1/invoices?external_customer_id=acme").await.expect(200);
    assert_eq!(list.body["meta"]["total_count"], 1);
    let id = list.body["invoices"][0]["lago_id"].as_str().unwrap().to_owned();
    let r = app.get(&format!("/api/v1/invoices/{id}")).await.expect(200);
    let inv = &r.body["invoice"];
    assert_eq!(inv["status"], "finalized");
    assert_eq!(inv["invoice_type"], "subscription");
    assert_eq!(inv["currency"], "EUR");
    assert_eq!(inv["issuing_date"], this_month.to_string());
    assert_eq!(inv["payment_due_date"], this_month.to_string());
    assert!(inv["number"].as_str().unwrap().ends_with("-001-001"), "{}", inv["number"]);
    let period = &inv["billing_periods"][0];
    assert_eq!(period["invoicing_reason"], "subscription_periodic");
    assert_eq!(period["charges_from_datetime"], start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));

    // Worked by hand: the month's fee 49.00; 250 calls, 100 free then 0.01 each: 1.50; 49.75 GB in packages of
    // 10 at 5.00: 5 packages, 25.00; 3 distinct seats at 3.50: 10.50; region calls: 3 in Europe at 0.02 (0.06),
    // 2 in the US at 0.05 (0.10), 1 without a region at the charge's 0.10.
    assert_eq!(fee(inv, "startup", None)["amount_cents"], 4900);
    let calls = fee(inv, "api_calls", None);
    assert_eq!((calls["amount_cents"].clone(), calls["units"].clone()), (json!(150), json!("250")));
    let storage = fee(inv, "storage", None);
    assert_eq!((storage["amount_cents"].clone(), storage["units"].clone()), (json!(2500), json!("49.75")));
    assert_eq!(fee(inv, "seats", None)["amount_cents"], 1050);
    assert_eq!(fee(inv, "region_calls", Some("Europe"))["amount_cents"], 6);
    assert_eq!(fee(inv, "region_calls", Some("us"))["amount_cents"], 10);
    let other = inv["fees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["item"]["code"] == "region_calls" && f["lago_charge_filter_id"].is_null())
        .unwrap();
    assert_eq!((other["amount_cents"].clone(), other["events_count"].clone()), (json!(10), json!(1)));
    // 86.26 of fees, less the 10.00 coupon: 76.26; VAT 20 %: 15.252 -> 15.25; total 91.51.
    assert_eq!(inv["fees_amount_cents"], 8626);
    assert_eq!(inv["coupons_amount_cents"], 1000);
    assert_eq!(inv["sub_total_excluding_taxes_amount_cents"], 7626);
    assert_eq!(inv["taxes_amount_cents"], 1525);
    assert_eq!(inv["sub_total_including_taxes_amount_cents"], 9151);
    assert_eq!(inv["total_amount_cents"], 9151);
    assert_eq!(inv["credits"][0]["amount_cents"], 1000);
    assert_eq!(inv["credits"][0]["item"]["code"], "welcome");
    assert_eq!(inv["applied_taxes"][0]["tax_code"], "vat");
    assert_eq!(inv["applied_taxes"][0]["amount_cents"], 1525);
    // The subscription fee's share of the coupon: 1000 × 4900 / 8626 = 568.05008 (five places, as Lago keeps it).
    assert_eq!(fee(inv, "startup", None)["precise_coupons_amount_cents"], "568.05008");
    // The once-coupon is used up.
    let applied = app.get("/api/v1/applied_coupons?external_customer_id=acme").await.expect(200);
    assert_eq!(applied.body["applied_coupons"][0]["status"], "terminated");

    // Usage of the current month: 5 calls (free) and 25 GB (3 packages, 15.00).
    let mut current = Vec::new();
    for i in 0..5 {
        current
            .push(json!({"transaction_id": format!("n{i}"), "external_subscription_id": "sub-1", "code": "api_calls"}));
    }
    current.push(json!({"transaction_id": "n-gb", "external_subscription_id": "sub-1", "code": "storage",
                        "properties": {"gb": 25}}));
    app.post("/api/v1/events/batch", &json!({"events": current})).await.expect(200);
    let u = app.get("/api/v1/customers/acme/current_usage?external_subscription_id=sub-1").await.expect(200);
    let usage = &u.body["customer_usage"];
    assert_eq!(usage["from_datetime"], end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    assert_eq!((usage["amount_cents"].clone(), usage["taxes_amount_cents"].clone()), (json!(1500), json!(300)));
    assert_eq!(usage["total_amount_cents"], 1800);
    let by_code = |code: &str| {
        usage["charges_usage"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["billable_metric"]["code"] == code)
            .unwrap()
            .clone()
    };
    // The 5 calls, and the one sent at the first instant of this month.
    assert_eq!(by_code("api_calls")["units"], "6");
    assert_eq!(by_code("storage")["amount_cents"], 1500);
    assert_eq!(by_code("region_calls")["filters"].as_array().unwrap().len(), 2);
    app.get("/api/v1/customers/acme/current_usage?external_subscription_id=nope").await.expect(404);

    // The preview of this month's invoice: the whole month's fee (it ends at the boundary), this month's usage so
    // far, no coupon left, 20 % VAT; stored nowhere.
    let p = app
        .post(
            "/api/v1/invoices/preview",
            &json!({"customer": {"external_id": "acme"}, "subscriptions": {"external_ids": ["sub-1"]}}),
        )
        .await
        .expect(200);
    let pv = &p.body["invoice"];
    assert_eq!((pv["fees_amount_cents"].clone(), pv["coupons_amount_cents"].clone()), (json!(6400), json!(0)));
    assert_eq!((pv["taxes_amount_cents"].clone(), pv["total_amount_cents"].clone()), (json!(1280), json!(7680)));
    assert_eq!(pv["status"], "draft");
    assert_eq!(fee(pv, "storage", None)["lago_id"], Value::Null);
    assert_eq!(app.get("/api/v1/invoices").await.ok().body["meta"]["total_count"], 1);
    let r = app.post("/api/v1/invoices/preview", &json!({"customer": {"external_id": "nobody"}})).await.expect(404);
    assert_eq!(r.body["code"], "customer_not_found");
    let r =
        app.post("/api/v1/invoices/preview", &json!({"customer": {"external_id": "acme"}, "subscriptions": [1]})).await;
    assert_eq!(r.expect(400).body["error"], "subscriptions_must_be_an_object");

    // Termination bills the started days of this month at once, and this month's usage.
    app.delete("/api/v1/subscriptions/sub-1").await.expect(200);
    let list = app.get("/api/v1/invoices?external_customer_id=acme").await.expect(200);
    assert_eq!(list.body["meta"]["total_count"], 2);
    let last = &list.body["invoices"][0];
    assert_eq!(last["billing_periods"][0]["invoicing_reason"], "subscription_terminating");
    let terminated: DateTime<Utc> = app.get("/api/v1/subscriptions/sub-1?status=terminated").await.expect(200).body
        ["subscription"]["terminated_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let month_days = (first_of_month(this_month + Duration::days(32)) - this_month).num_days() as i64;
    let days = billing::domain::periods::day_count(tz, end, terminated) as i64;
    // 4900 × days / month_days, rounded half up.
    let prorated = (4900 * days * 2 + month_days) / (2 * month_days);
    assert_eq!(fee(last, "startup", None)["amount_cents"], prorated);
    assert_eq!(fee(last, "storage", None)["amount_cents"], 1500);
    assert_eq!(last["coupons_amount_cents"], 0);
    let fees_total = prorated + 1500;
    assert_eq!(last["fees_amount_cents"], fees_total);
    assert_eq!(last["total_amount_cents"], fees_total + (fees_total * 2 + 5) / 10);
    assert!(last["number"].as_str().unwrap().ends_with("-001-002"));
    // The clock does not bill the terminated subscription again.
    assert_eq!(bill(&app, Utc::now()).await.invoices, 0);

    // Void a finalized invoice; voiding it again is refused; an unknown invoice is 404.
    let v = app.post(&format!("/api/v1/invoices/{id}/void"), &json!({})).await.expect(200);
    assert_eq!(v.body["invoice"]["status"], "voided");
    let again = app.post(&format!("/api/v1/invoices/{id}/void"), &json!({})).await.expect(405);
    assert_eq!(again.body["code"], "not_voidable");
    app.get("/api/v1/invoices/5f0c1e1a-0000-4000-8000-000000000000").await.expect(404);
    app.get("/api/v1/invoices?status=voided").await.expect(200);
}

#[tokio::test]
async fn the_clock_bills_each_boundary_once_on_calendar_and_anniversary_billing() {
    let app = TestApp::new().await;
    app.post(
        "/api/v1/billable_metrics",
        &json!({"billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}}),
    )
    .await
    .ok();
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "P", "code": "p", "interval": "monthly", "amount_cents": 3100, "amount_currency": "USD"}}),
    )
    .await
    .ok();
    // Grace period of 2 days: invoices start as drafts, numbered only when finalized.
    app.put("/api/v1/organizations", &json!({"organization": {"billing_configuration": {"invoice_grace_period": 2}}}))
        .await
        .ok();
    for (id, billing_time) in [("cal", "calendar"), ("ann", "anniversary")] {
        app.post(
            "/api/v1/subscriptions",
            &json!({"subscription": {"external_customer_id": format!("c-{id}"), "plan_code": "p", "external_id": id,
                                     "billing_time": billing_time, "subscription_at": "2025-01-10T10:00:00Z"}}),
        )
        .await
        .expect(200);
    }
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    // Feb 1: the calendar subscription bills Jan 10-31 (22 of 31 days); the anniversary one has no boundary yet.
    assert_eq!(bill(&app, at("2025-02-01T00:00:05Z")).await.invoices, 1);
    assert_eq!(bill(&app, at("2025-02-01T06:00:00Z")).await.invoices, 0);
    let cal = app.get("/api/v1/invoices?external_customer_id=c-cal").await.expect(200);
    assert_eq!(cal.body["meta"]["total_count"], 1);
    let inv = &cal.body["invoices"][0];
    assert_eq!((inv["status"].clone(), inv["number"].as_str().unwrap().ends_with("-DRAFT")), (json!("draft"), true));
    assert_eq!(inv["fees_amount_cents"], 2200);
    assert_eq!(inv["issuing_date"], "2025-02-03");
    // The clock finalizes (and numbers) a draft once its grace period is over: on Feb 3, not before.
    let cal_id = inv["lago_id"].as_str().unwrap().to_owned();
    bill(&app, at("2025-02-02T23:00:00Z")).await;
    assert_eq!(app.get(&format!("/api/v1/invoices/{cal_id}")).await.ok().body["invoice"]["status"], "draft");
    bill(&app, at("2025-02-03T00:00:01Z")).await;
    let done = app.get(&format!("/api/v1/invoices/{cal_id}")).await.ok();
    assert_eq!(done.body["invoice"]["status"], "finalized");
    assert!(done.body["invoice"]["number"].as_str().unwrap().ends_with("-001"));

    // Feb 10: the anniversary subscription bills Jan 10 - Feb 9 whole; the calendar one was billed already.
    assert_eq!(bill(&app, at("2025-02-10T00:00:01Z")).await.invoices, 1);
    assert_eq!(bill(&app, at("2025-02-10T00:00:01Z")).await.invoices, 0);
    let ann = app.get("/api/v1/invoices?external_customer_id=c-ann").await.expect(200);
    assert_eq!(ann.body["meta"]["total_count"], 1);
    assert_eq!(ann.body["invoices"][0]["fees_amount_cents"], 3100);
    assert_eq!(ann.body["invoices"][0]["billing_periods"][0]["charges_to_datetime"], "2025-02-09T23:59:59Z");
    // Finalizing by hand, before the grace period is over, numbers a draft too.
    let id = ann.body["invoices"][0]["lago_id"].as_str().unwrap();
    let f = app.put(&format!("/api/v1/invoices/{id}/finalize"), &json!({})).await.expect(200);
    assert_eq!(f.body["invoice"]["status"], "finalized");
    assert!(f.body["invoice"]["number"].as_str().unwrap().ends_with("-001"));
    // Concurrent clocks bill a boundary once.
    let t = at("2025-03-01T00:00:01Z");
    let (a, b) =
        tokio::join!(tick(&app.pool, &*app.store, &app.tracker, t), tick(&app.pool, &*app.store, &app.tracker, t));
    assert_eq!(a.unwrap().invoices + b.unwrap().invoices, 1);
}

#[tokio::test]
async fn a_once_coupon_is_used_once_across_a_customers_subscriptions_billed_in_one_run() {
    let app = TestApp::new().await;
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "P", "code": "p", "interval": "monthly", "amount_cents": 1000, "amount_currency": "EUR"}}),
    )
    .await
    .ok();
    for id in ["a", "b"] {
        app.post(
            "/api/v1/subscriptions",
            &json!({"subscription": {"external_customer_id": "acme", "plan_code": "p", "external_id": id,
                                     "subscription_at": "2025-01-01T00:00:00Z"}}),
        )
        .await
        .expect(200);
    }
    app.post(
        "/api/v1/coupons",
        &json!({"coupon": {"name": "Fifteen", "code": "fifteen", "coupon_type": "fixed_amount", "amount_cents": 1500,
                           "amount_currency": "EUR", "frequency": "once", "expiration": "no_expiration"}}),
    )
    .await
    .ok();
    app.post(
        "/api/v1/applied_coupons",
        &json!({"applied_coupon": {"external_customer_id": "acme", "coupon_code": "fifteen"}}),
    )
    .await
    .ok();
    let at = "2025-02-01T00:00:01Z".parse::<DateTime<Utc>>().unwrap();
    assert_eq!(bill(&app, at).await.invoices, 2);
    let list = app.get("/api/v1/invoices?external_customer_id=acme").await.expect(200);
    let mut coupons: Vec<i64> =
        list.body["invoices"].as_array().unwrap().iter().map(|i| i["coupons_amount_cents"].as_i64().unwrap()).collect();
    coupons.sort();
    // 15.00 in all: 10.00 on the first invoice, the 5.00 left on the second.
    assert_eq!(coupons, vec![500, 1000]);
    let numbers: Vec<&str> =
        list.body["invoices"].as_array().unwrap().iter().map(|i| i["number"].as_str().unwrap()).collect();
    assert!(
        numbers.iter().any(|n| n.ends_with("-001-001")) && numbers.iter().any(|n| n.ends_with("-001-002")),
        "{numbers:?}"
    );
}

#[tokio::test]
async fn a_plan_paid_in_advance_bills_its_first_period_at_once_then_charges_in_arrears() {
    let app = TestApp::new().await;
    app.post(
        "/api/v1/billable_metrics",
        &json!({"billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}}),
    )
    .await
    .ok();
    let metric = app.get("/api/v1/billable_metrics/calls").await.ok().body["billable_metric"]["lago_id"].clone();
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "Ahead", "code": "ahead", "interval": "monthly", "amount_cents": 3000,
                         "amount_currency": "EUR", "pay_in_advance": true, "charges": [
                            {"billable_metric_id": metric, "charge_model": "standard", "properties": {"amount": "1"}}]}}),
    )
    .await
    .ok();
    // Started today: the starting invoice bills the rest of this month (prorated by days) and no charges.
    let now = Utc::now();
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "acme", "plan_code": "ahead", "external_id": "s",
                                 "billing_time": "calendar"}}),
    )
    .await
    .expect(200);
    let list = app.get("/api/v1/invoices?external_customer_id=acme").await.expect(200);
    assert_eq!(list.body["meta"]["total_count"], 1);
    let inv = &list.body["invoices"][0];
    assert_eq!(inv["billing_periods"][0]["invoicing_reason"], "subscription_starting");
    let today = now.date_naive();
    let month_start = first_of_month(today);
    let month_days = (first_of_month(month_start + Duration::days(32)) - month_start).num_days();
    let days = month_days - (today - month_start).num_days();
    let expected = (3000 * days * 2 + month_days) / (2 * month_days);
    assert_eq!(inv["fees"].as_array().unwrap().len(), 1);
    assert_eq!(inv["fees_amount_cents"], expected);
    // The clock does not bill the start again.
    assert_eq!(bill(&app, now).await.invoices, 0);
    // Usage this month, then the boundary: next month's fee in advance, this month's charges in arrears.
    app.post(
        "/api/v1/events",
        &json!({"event": {"transaction_id": "t1", "external_subscription_id": "s", "code": "calls"}}),
    )
    .await
    .expect(200);
    let next_month = local_midnight(chrono_tz::Tz::UTC, first_of_month(month_start + Duration::days(32)));
    assert_eq!(bill(&app, next_month + Duration::seconds(1)).await.invoices, 1);
    let list = app.get("/api/v1/invoices?external_customer_id=acme").await.expect(200);
    let periodic = &list.body["invoices"][0];
    assert_eq!(periodic["billing_periods"][0]["invoicing_reason"], "subscription_periodic");
    assert_eq!(fee(periodic, "ahead", None)["amount_cents"], 3000);
    assert_eq!(fee(periodic, "calls", None)["amount_cents"], 100);
    assert_eq!(periodic["fees_amount_cents"], 3100);
}

#[tokio::test]
async fn charge_minimums_and_the_plan_commitment_are_trued_up() {
    let app = TestApp::new().await;
    app.post(
        "/api/v1/billable_metrics",
        &json!({"billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}}),
    )
    .await
    .ok();
    let metric = app.get("/api/v1/billable_metrics/calls").await.ok().body["billable_metric"]["lago_id"].clone();
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "Committed", "code": "committed", "interval": "monthly", "amount_cents": 1000,
                         "amount_currency": "EUR", "minimum_commitment": {"amount_cents": 5000},
                         "charges": [{"billable_metric_id": metric, "charge_model": "standard", "min_amount_cents": 300,
                                      "properties": {"amount": "1"}}]}}),
    )
    .await
    .ok();
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "acme", "plan_code": "committed", "external_id": "s",
                                 "subscription_at": "2025-01-01T00:00:00Z"}}),
    )
    .await
    .expect(200);
    let call = json!({"event": {"transaction_id": "t1", "external_subscription_id": "s", "code": "calls",
                                "timestamp": "1736942400"}}); // 2025-01-15
    app.post("/api/v1/events", &call).await.expect(200);
    let at = "2025-02-01T00:00:01Z".parse::<DateTime<Utc>>().unwrap();
    assert_eq!(bill(&app, at).await.invoices, 1);
    let list = app.get("/api/v1/invoices?external_customer_id=acme").await.expect(200);
    let inv = &list.body["invoices"][0];
    // Fee 10.00; one call 1.00, trued up to the charge's 3.00 minimum (2.00); 13.00 trued up to the 50.00
    // commitment (37.00).
    let amounts: Vec<(String, i64)> = inv["fees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["item"]["type"].as_str().unwrap().to_owned(), f["amount_cents"].as_i64().unwrap()))
        .collect();
    let expected: Vec<(String, i64)> = [("subscription", 1000), ("charge", 100), ("charge", 200), ("commitment", 3700)]
        .map(|(t, a)| (t.to_owned(), a))
        .into();
    assert_eq!(amounts, expected);
    assert_eq!(inv["fees_amount_cents"], 5000);
}

async fn estimate_fees_prices_one_more_event_on_a_charge_paid_in_advance(mode: Mode) {
    let app = TestApp::in_mode(mode).await;
    app.post("/api/v1/taxes", &json!({"tax": {"name": "VAT", "code": "vat", "rate": "20"}})).await.ok();
    for m in [
        json!({"name": "Credits", "code": "credits", "aggregation_type": "sum_agg", "field_name": "amount"}),
        json!({"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}),
    ] {
        app.post("/api/v1/billable_metrics", &json!({ "billable_metric": m })).await.ok();
    }
    let credits = app.get("/api/v1/billable_metrics/credits").await.ok().body["billable_metric"]["lago_id"].clone();
    let calls = app.get("/api/v1/billable_metrics/calls").await.ok().body["billable_metric"]["lago_id"].clone();
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "P", "code": "p", "interval": "monthly", "amount_cents": 0, "amount_currency": "EUR",
            "charges": [
                {"billable_metric_id": credits, "charge_model": "graduated", "pay_in_advance": true, "invoiceable": true,
                 "properties": {"graduated_ranges": [
                    {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"},
                    {"from_value": 11, "to_value": null, "per_unit_amount": "0.5", "flat_amount": "0"}]}},
                {"billable_metric_id": calls, "charge_model": "standard", "properties": {"amount": "1"}}]}}),
    )
    .await
    .ok();
    app.post("/api/v1/customers", &json!({"customer": {"external_id": "acme", "tax_codes": ["vat"]}})).await.ok();
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "acme", "plan_code": "p", "external_id": "s"}}),
    )
    .await
    .expect(200);
    // 8 credits used this period already.
    app.post(
        "/api/v1/events",
        &json!({"event": {"transaction_id": "t1", "external_subscription_id": "s", "code": "credits",
                          "properties": {"amount": 8}}}),
    )
    .await
    .expect(200);
    let r = app
        .post(
            "/api/v1/events/estimate_fees",
            &json!({"event": {"external_subscription_id": "s", "code": "credits", "properties": {"amount": 5}}}),
        )
        .await
        .expect(200);
    // 13 credits cost 10 × 1.00 + 3 × 0.50 = 11.50; 8 cost 8.00: this event adds 3.50, and 20 % VAT.
    let fee = &r.body["fees"][0];
    assert_eq!((fee["amount_cents"].clone(), fee["units"].clone()), (json!(350), json!("5")));
    assert_eq!((fee["taxes_amount_cents"].clone(), fee["total_amount_cents"].clone()), (json!(70), json!(420)));
    assert_eq!(fee["pay_in_advance"], true);
    assert_eq!(fee["lago_id"], Value::Null);
    // Nothing was stored.
    assert_eq!(app.get("/api/v1/events?code=credits").await.ok().body["meta"]["total_count"], 1);
    let estimate = |event: Value| {
        let app = &app;
        async move { app.post("/api/v1/events/estimate_fees", &json!({ "event": event })).await }
    };
    let r = estimate(json!({"external_subscription_id": "nope", "code": "credits"})).await.expect(404);
    assert_eq!(r.body["code"], "subscription_not_found");
    let r = estimate(json!({"external_subscription_id": "s", "code": "nope"})).await.expect(404);
    assert_eq!(r.body["code"], "billable_metric_not_found");
    let r = estimate(json!({"external_subscription_id": "s", "code": "calls"})).await.expect(422);
    assert_eq!(r.body["error_details"]["code"], json!(["does_not_match_an_instant_charge"]));
    let r = estimate(json!({"external_subscription_id": "s", "code": "credits", "properties": {"amount": "x"}})).await;
    assert_eq!(r.expect(422).body["error_details"]["properties"], json!(["value_is_not_valid_number"]));

    // The clock bills each event of the charge paid in advance on its own invoice: the first (8 credits) 8.00,
    // then the one the estimate priced, 3.50, as estimated.
    assert_eq!(bill(&app, Utc::now()).await.invoices, 1);
    app.post(
        "/api/v1/events",
        &json!({"event": {"transaction_id": "t2", "external_subscription_id": "s", "code": "credits",
                          "properties": {"amount": 5}}}),
    )
    .await
    .expect(200);
    assert_eq!(bill(&app, Utc::now()).await.invoices, 1);
    assert_eq!(bill(&app, Utc::now()).await.invoices, 0, "each event is billed once");
    let list = app.get("/api/v1/invoices?external_customer_id=acme").await.expect(200);
    let amounts: Vec<(i64, i64)> = list.body["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["fees_amount_cents"].as_i64().unwrap(), i["total_amount_cents"].as_i64().unwrap()))
        .collect();
    assert_eq!(amounts, vec![(350, 420), (800, 960)]);
    let last = &list.body["invoices"][0];
    assert_eq!(last["billing_periods"][0]["invoicing_reason"], "in_advance_charge");
    assert_eq!(last["fees"][0]["pay_in_advance"], true);
    assert_eq!(last["status"], "finalized");

    // The worker bills an event as it arrives, without waiting for a clock tick: 2 more credits, still at 0.50.
    let worker = tokio::spawn(billing::invoicer::in_advance::run(
        app.pool.clone(),
        app.store.clone(),
        app.tracker.clone(),
        std::sync::Arc::new(billing::clock::SystemClock),
        std::time::Duration::from_millis(50),
    ));
    app.post(
        "/api/v1/events",
        &json!({"event": {"transaction_id": "t3", "external_subscription_id": "s", "code": "credits",
                          "properties": {"amount": 2}}}),
    )
    .await
    .expect(200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let newest = loop {
        let list = app.get("/api/v1/invoices?external_customer_id=acme").await.expect(200);
        if list.body["meta"]["total_count"] == 3 {
            break list.body["invoices"][0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "the event paid in advance was not billed: {}", list.body);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    worker.abort();
    assert_eq!((newest["fees_amount_cents"].clone(), newest["total_amount_cents"].clone()), (json!(100), json!(120)));
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM in_advance_queue").fetch_one(&app.pool).await.unwrap();
    assert_eq!(queued, 0, "the billed subscription left the queue");
    assert_eq!(bill(&app, Utc::now()).await.invoices, 0, "the clock finds nothing more to bill");
}

async fn a_draft_is_computed_again_on_refresh_and_on_finalize_with_late_events(mode: Mode) {
    let app = TestApp::in_mode(mode).await;
    app.put("/api/v1/organizations", &json!({"organization": {"billing_configuration": {"invoice_grace_period": 3}}}))
        .await
        .ok();
    app.post(
        "/api/v1/billable_metrics",
        &json!({"billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}}),
    )
    .await
    .ok();
    let metric = app.get("/api/v1/billable_metrics/calls").await.ok().body["billable_metric"]["lago_id"].clone();
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "P", "code": "p", "interval": "monthly", "amount_cents": 1000, "amount_currency": "EUR",
                         "charges": [{"billable_metric_id": metric, "charge_model": "standard", "properties": {"amount": "1"}}]}}),
    )
    .await
    .ok();
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "acme", "plan_code": "p", "external_id": "s",
                                 "subscription_at": "2025-01-01T00:00:00Z"}}),
    )
    .await
    .expect(200);
    let call = |tx: &str, ts: &str| json!({"event": {"transaction_id": tx, "external_subscription_id": "s", "code": "calls", "timestamp": ts}});
    app.post("/api/v1/events", &call("t1", "1736942400")).await.expect(200); // Jan 15
    bill(&app, "2025-02-01T00:00:01Z".parse().unwrap()).await;
    let list = app.get("/api/v1/invoices").await.ok();
    let id = list.body["invoices"][0]["lago_id"].as_str().unwrap().to_owned();
    assert_eq!(list.body["invoices"][0]["fees_amount_cents"], 1100);
    // A call of January arrives during the grace period.
    app.post("/api/v1/events", &call("t2", "1737374400")).await.expect(200); // Jan 20
    let r = app.put(&format!("/api/v1/invoices/{id}/refresh"), &json!({})).await.expect(200);
    assert_eq!(
        (r.body["invoice"]["lago_id"].clone(), r.body["invoice"]["fees_amount_cents"].clone()),
        (json!(id), json!(1200))
    );
    assert_eq!(r.body["invoice"]["status"], "draft");
    app.post("/api/v1/events", &call("t3", "1737547200")).await.expect(200); // Jan 22
    let f = app.put(&format!("/api/v1/invoices/{id}/finalize"), &json!({})).await.expect(200);
    assert_eq!(
        (f.body["invoice"]["status"].clone(), f.body["invoice"]["fees_amount_cents"].clone()),
        (json!("finalized"), json!(1300))
    );
    assert!(f.body["invoice"]["number"].as_str().unwrap().ends_with("-001-001"));
    // A finalized invoice is not refreshed, and not finalized again.
    let again = app.put(&format!("/api/v1/invoices/{id}/refresh"), &json!({})).await.expect(200);
    assert_eq!(again.body["invoice"]["fees_amount_cents"], 1300);
    app.put(&format!("/api/v1/invoices/{id}/finalize"), &json!({})).await.expect(404);
    assert_eq!(app.get("/api/v1/invoices").await.ok().body["meta"]["total_count"], 1);
}

#[tokio::test]
async fn prorated_charges_bill_each_unit_for_the_days_it_was_there() {
    let app = TestApp::new().await;
    let mut ids = Vec::new();
    for (code, agg, field) in
        [("gb", "sum_agg", "gb"), ("users", "unique_count_agg", "user"), ("seats", "sum_agg", "n")]
    {
        let r = app
            .post(
                "/api/v1/billable_metrics",
                &json!({"billable_metric": {"name": code, "code": code, "aggregation_type": agg, "field_name": field,
                                        "recurring": true}}),
            )
            .await
            .expect(200);
        ids.push(r.body["billable_metric"]["lago_id"].as_str().unwrap().to_owned());
    }
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "Pro", "code": "pro", "interval": "monthly", "amount_cents": 0,
            "amount_currency": "EUR", "charges": [
                {"billable_metric_id": ids[0], "charge_model": "standard", "prorated": true,
                 "properties": {"amount": "3"}},
                {"billable_metric_id": ids[1], "charge_model": "graduated", "prorated": true,
                 "properties": {"graduated_ranges": [
                    {"from_value": 0, "to_value": 1, "per_unit_amount": "10", "flat_amount": "0"},
                    {"from_value": 2, "to_value": null, "per_unit_amount": "4", "flat_amount": "0"}]}},
                {"billable_metric_id": ids[2], "charge_model": "standard", "prorated": true, "pay_in_advance": true,
                 "invoiceable": true, "properties": {"amount": "31"}}]}}),
    )
    .await
    .expect(200);
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "c", "plan_code": "pro", "external_id": "sub-1",
                                 "billing_time": "calendar", "subscription_at": "2025-01-01T00:00:00Z"}}),
    )
    .await
    .expect(200);
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let events = [
        event("g1", "gb", at("2025-01-10T12:00:00Z"), json!({"gb": 31})),
        event("g2", "gb", at("2025-02-15T08:00:00Z"), json!({"gb": 28})),
        event("u1", "users", at("2025-01-01T09:00:00Z"), json!({"user": "a"})),
        event("u2", "users", at("2025-02-08T09:00:00Z"), json!({"user": "b"})),
        event("u3", "users", at("2025-02-21T17:00:00Z"), json!({"user": "a", "operation_type": "remove"})),
    ];
    app.post("/api/v1/events/batch", &json!({"events": events})).await.expect(200);

    // A seat paid in advance on 22 January is billed at once for the 10 days left of 31: 0.32259 units at 31.00.
    let seat = event("s1", "seats", at("2025-01-22T00:00:00Z"), json!({"n": 1}));
    app.post("/api/v1/events", &json!({ "event": seat })).await.expect(200);
    bill(&app, at("2025-01-22T01:00:00Z")).await;
    let list = app.get("/api/v1/invoices?external_customer_id=c").await.expect(200);
    let seat_invoice = &list.body["invoices"][0];
    assert_eq!(seat_invoice["invoice_type"], "subscription");
    assert_eq!(seat_invoice["fees"][0]["units"], "0.32259");
    assert_eq!(seat_invoice["fees_amount_cents"], 1000);

    let fees_of = |inv: &Value, code: &str| {
        let f = fee(inv, code, None);
        (f["units"].as_str().unwrap().to_owned(), f["amount_cents"].as_i64().unwrap())
    };
    // January: 31 GB for 22 of 31 days = 22 units at 3.00; user a all month: 1 unit in the first tier at 10.00.
    assert_eq!(bill(&app, at("2025-02-01T00:00:05Z")).await.invoices, 1);
    let list = app.get("/api/v1/invoices?external_customer_id=c").await.expect(200);
    let jan = &list.body["invoices"][0];
    assert_eq!(fees_of(jan, "gb"), ("22".to_owned(), 6600));
    assert_eq!(fees_of(jan, "users"), ("1".to_owned(), 1000));
    // February (28 days): the 31 GB carried all month plus 28 GB for 14 days = 45 units (135.00); user a until
    // its removal on the 21st (21/28) in the first tier (7.50), user b from the 8th (21/28) in the second (3.00).
    assert_eq!(bill(&app, at("2025-03-01T00:00:05Z")).await.invoices, 1);
    let list = app.get("/api/v1/invoices?external_customer_id=c").await.expect(200);
    let feb = &list.body["invoices"][0];
    assert_eq!(fees_of(feb, "gb"), ("45".to_owned(), 13500));
    assert_eq!(fees_of(feb, "users"), ("1.5".to_owned(), 1050));
    assert_eq!(feb["fees_amount_cents"], 14550);

    // Current usage shows the full units beside the prorated amount: 59 GB carried all month, 30 more from today
    // for the days left (today included).
    let now = Utc::now();
    let (today, month_start) = (now.date_naive(), first_of_month(now.date_naive()));
    let next_month = first_of_month(month_start + Duration::days(32));
    let (days, left) = ((next_month - month_start).num_days(), (next_month - today).num_days());
    let late = event("g3", "gb", now, json!({"gb": 30}));
    app.post("/api/v1/events", &json!({ "event": late })).await.expect(200);
    let u = app.get("/api/v1/customers/c/current_usage?external_subscription_id=sub-1").await.expect(200);
    let gb = u.body["customer_usage"]["charges_usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["billable_metric"]["code"] == "gb")
        .unwrap()
        .clone();
    assert_eq!(gb["units"], "89");
    // (59 + 30 × left / days) × 3.00, in cents, rounded half up.
    let expected = (59 * days * 300 + 30 * left * 300 + days / 2) / days;
    assert_eq!(gb["amount_cents"], expected);
}

#[tokio::test]
async fn a_preview_with_a_plan_code_shows_the_first_invoice_of_a_new_subscription() {
    let app = TestApp::new().await;
    for (code, in_advance) in [("upfront", true), ("arrears", false)] {
        app.post(
            "/api/v1/plans",
            &json!({"plan": {"name": code, "code": code, "interval": "monthly", "amount_cents": 3100,
                             "amount_currency": "EUR", "pay_in_advance": in_advance}}),
        )
        .await
        .expect(200);
    }
    app.post("/api/v1/customers", &json!({"customer": {"external_id": "p", "currency": "EUR"}})).await.expect(200);
    let preview = |plan: &str, billing_time: &str| {
        json!({"customer": {"external_id": "p"}, "plan_code": plan, "billing_time": billing_time,
               "subscription_at": "2025-03-10T00:00:00Z"})
    };
    // Paid in advance on calendar billing: 10 to 31 March at once, 22 of 31 days.
    let r = app.post("/api/v1/invoices/preview", &preview("upfront", "calendar")).await.expect(200);
    let inv = &r.body["invoice"];
    assert_eq!(inv["fees_amount_cents"], 2200);
    assert_eq!(inv["billing_periods"][0]["invoicing_reason"], "subscription_starting");
    // In arrears: the end of the first period; anniversary billing makes it a whole month.
    let r = app.post("/api/v1/invoices/preview", &preview("arrears", "anniversary")).await.expect(200);
    assert_eq!(r.body["invoice"]["fees_amount_cents"], 3100);
    assert_eq!(r.body["invoice"]["billing_periods"][0]["charges_to_datetime"], "2025-04-09T23:59:59Z");
    let r = app.post("/api/v1/invoices/preview", &preview("arrears", "calendar")).await.expect(200);
    assert_eq!(r.body["invoice"]["fees_amount_cents"], 2200);
    // Lago's errors; nothing was stored.
    let r = app.post("/api/v1/invoices/preview", &preview("nope", "calendar")).await.expect(404);
    assert_eq!(r.body["code"], "plan_not_found");
    let r = app.post("/api/v1/invoices/preview", &preview("arrears", "weekly")).await.expect(422);
    assert_eq!(r.body["error_details"]["billing_time"][0], "value_is_invalid");
    assert_eq!(app.get("/api/v1/invoices").await.expect(200).body["meta"]["total_count"], 0);
    assert_eq!(
        app.get("/api/v1/subscriptions?external_customer_id=p").await.expect(200).body["meta"]["total_count"],
        0
    );
}

#[tokio::test]
async fn an_invoice_update_sets_its_payment_status_and_metadata_as_lago() {
    let app = TestApp::new().await;
    app.post(
        "/api/v1/webhook_endpoints",
        &json!({"webhook_endpoint": {"webhook_url": "http://127.0.0.1:9/hooks", "signature_algo": "hmac"}}),
    )
    .await
    .expect(200);
    app.post(
        "/api/v1/plans",
        &json!({"plan": {"name": "P", "code": "p", "interval": "monthly", "amount_cents": 1000,
                         "amount_currency": "EUR"}}),
    )
    .await
    .expect(200);
    app.post(
        "/api/v1/subscriptions",
        &json!({"subscription": {"external_customer_id": "c", "plan_code": "p", "external_id": "s",
                                 "billing_time": "calendar", "subscription_at": "2025-01-01T00:00:00Z"}}),
    )
    .await
    .expect(200);
    bill(&app, "2025-02-01T00:00:05Z".parse().unwrap()).await;
    let list = app.get("/api/v1/invoices?external_customer_id=c").await.expect(200);
    let id = list.body["invoices"][0]["lago_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/invoices/{id}");

    let r = app.put(&path, &json!({"invoice": {"payment_status": "succeeded"}})).await.expect(200);
    assert_eq!(r.body["invoice"]["payment_status"], "succeeded");
    assert!(r.body["invoice"]["fees"].as_array().unwrap().iter().all(|f| f["payment_status"] == "succeeded"));
    // The change is announced once; setting the same status again announces nothing.
    app.put(&path, &json!({"invoice": {"payment_status": "succeeded"}})).await.expect(200);
    let sent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhooks WHERE webhook_type = 'invoice.payment_status_updated' AND object_id = $1",
    )
    .bind(uuid::Uuid::parse_str(&id).unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(sent, 1);

    // Metadata: added, then one updated by id and the other dropped.
    let r = app
        .put(&path, &json!({"invoice": {"metadata": [{"key": "po", "value": "PO-1"}, {"key": "ref", "value": "r"}]}}))
        .await
        .expect(200);
    let meta = r.body["invoice"]["metadata"].as_array().unwrap().clone();
    assert_eq!(meta.len(), 2);
    let po = meta.iter().find(|m| m["key"] == "po").unwrap()["lago_id"].clone();
    let r =
        app.put(&path, &json!({"invoice": {"metadata": [{"id": po, "key": "po", "value": "PO-2"}]}})).await.expect(200);
    let meta = &r.body["invoice"]["metadata"];
    assert_eq!((meta.as_array().unwrap().len(), meta[0]["value"].clone()), (1, json!("PO-2")));

    // Lago's errors, and nothing changed by them.
    let r = app.put(&path, &json!({"invoice": {"payment_status": "paid"}})).await.expect(422);
    assert_eq!(r.body["error_details"]["payment_status"][0], "value_is_invalid");
    let six: Vec<Value> = (0..6).map(|i| json!({"key": format!("k{i}"), "value": "v"})).collect();
    let r = app.put(&path, &json!({"invoice": {"metadata": six}})).await.expect(422);
    assert_eq!(r.body["error_details"]["metadata"][0], "invalid_count");
    assert_eq!(app.get(&path).await.expect(200).body["invoice"]["metadata"].as_array().unwrap().len(), 1);
    app.put("/api/v1/invoices/5f0c1e1a-0000-4000-8000-000000000000", &json!({"invoice": {}})).await.expect(404);
}
