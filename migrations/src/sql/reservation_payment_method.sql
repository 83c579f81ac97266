-- How a reservation is being (or was) paid: WALLET or CARD, set when it is paid for; its
-- refunds go the same way. Safe to run again.
ALTER TABLE reservation.reservations ADD COLUMN IF NOT EXISTS payment_method text
    CHECK (payment_method IN ('WALLET', 'CARD'));
