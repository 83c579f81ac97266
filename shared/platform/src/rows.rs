//! Rows read into types: what a status stored as text needs to be a column of a
//! `#[derive(FromQueryResult)]` struct.

/// Makes each status enum (with `fn parse(&str) -> Option<Self>`) readable from a text column:
/// a row holding a status the enum does not know is a type error naming both.
#[macro_export]
macro_rules! text_column {
    ($($t:ty),* $(,)?) => {$(
        impl sea_orm::TryGetable for $t {
            fn try_get_by<I: sea_orm::ColIdx>(
                res: &sea_orm::QueryResult,
                index: I,
            ) -> Result<Self, sea_orm::TryGetError> {
                let raw = <String as sea_orm::TryGetable>::try_get_by(res, index)?;
                Self::parse(&raw).ok_or_else(|| {
                    sea_orm::TryGetError::DbErr(sea_orm::DbErr::Type(format!(
                        "{raw:?} is not a {}",
                        stringify!($t)
                    )))
                })
            }
        }
    )*};
}

/// A statement's `count(*) AS n`.
#[derive(Debug, sea_orm::FromQueryResult)]
pub struct Count {
    pub n: i64,
}

impl Count {
    /// The count `row` answers; 0 without a row.
    pub fn of(row: Option<sea_orm::QueryResult>) -> Result<i64, sea_orm::DbErr> {
        use sea_orm::FromQueryResult as _;
        row.map_or(Ok(0), |r| Ok(Self::from_query_result(&r, "")?.n))
    }
}
