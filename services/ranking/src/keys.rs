//! The ranking's Redis keys under a namespace.

use contracts::Namespace;

/// `ranking:*` keys.
#[derive(Clone, Debug)]
pub struct Keys {
    /// HASH concert → name.
    pub names: String,
    /// HASH concert → time (ms) of the name's event, so an older rename cannot win.
    pub names_at: String,
    /// ZSET concert → confirmed seats, all time.
    pub confirmed: String,
    /// ZSET schedule → seconds to sell out.
    pub sold_out: String,
    /// HASH schedule → concert, for sold-out entries.
    pub schedule_concert: String,
    minute_prefix: String,
    sale_prefix: String,
}

impl Keys {
    pub fn new(ns: &Namespace) -> Self {
        Self {
            names: ns.redis_key("ranking:names"),
            names_at: ns.redis_key("ranking:names-at"),
            confirmed: ns.redis_key("ranking:confirmed"),
            sold_out: ns.redis_key("ranking:sold-out"),
            schedule_concert: ns.redis_key("ranking:schedule-concert"),
            minute_prefix: ns.redis_key("ranking:minute:"),
            sale_prefix: ns.redis_key("ranking:sale:"),
        }
    }

    /// ZSET concert → confirmed seats sold in one minute (epoch minutes).
    pub fn minute(&self, minute: i64) -> String {
        format!("{}{minute}", self.minute_prefix)
    }

    /// STRING: the minute bucket a confirmed reservation was counted in, while that bucket lives.
    pub fn sale(&self, reservation: contracts::ReservationId) -> String {
        format!("{}{reservation}", self.sale_prefix)
    }
}
