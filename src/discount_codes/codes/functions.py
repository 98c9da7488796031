"""The codes' stored functions, the one current text: how a code is shown, in SQL, for
``dc_claim`` (which writes the code into the claimed event in the same statement).
``codes.alphabet`` is the rule (``display``, ``fill_pattern``); these are its SQL twins,
held to it by ``tests/claim/test_claim_fast_path.py`` (every length and prefix). Changing
one: edit it here and add a migration that executes the new text as it is then."""

from __future__ import annotations

from discount_codes.kit.stored_function import StoredFunction

#: ``codes.alphabet.fill_pattern``: literals as written, separators back, ``#`` from the code.
DC_FILL_PATTERN = StoredFunction(
    signature="dc_fill_pattern(text, text)",
    definition=r"""
CREATE OR REPLACE FUNCTION dc_fill_pattern(p_code text, p_pattern text)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $fn$
DECLARE
    v_out text := '';
    v_i integer := 1;
    v_ch text;
BEGIN
    FOR v_n IN 1 .. length(p_pattern) LOOP
        v_ch := substr(p_pattern, v_n, 1);
        IF v_ch IN ('-', ' ') THEN
            v_out := v_out || v_ch;
            CONTINUE;
        END IF;
        IF v_i > length(p_code) THEN
            RETURN p_code;
        END IF;
        v_out := v_out || CASE WHEN v_ch = '#' THEN substr(p_code, v_i, 1) ELSE v_ch END;
        v_i := v_i + 1;
    END LOOP;
    IF v_i <> length(p_code) + 1 THEN
        RETURN p_code;
    END IF;
    RETURN v_out;
END
$fn$;
""",
)

#: ``codes.alphabet.display``: the prefix as the brand wrote it, then groups of four; a
#: pattern batch's codes as its pattern writes them; imported codes (no length) as stored.
#: One expression, no sub-select, so PostgreSQL inlines it into the statement that calls
#: it (the claim's assignment) instead of running a SQL function's executor per call.
DC_DISPLAY = StoredFunction(
    signature="dc_display(text, integer, text)",
    definition=r"""
CREATE OR REPLACE FUNCTION dc_display(p_code text, p_length integer, p_prefix text)
RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
    SELECT CASE
        WHEN p_length IS NULL OR p_length > length(p_code) THEN p_code
        WHEN strpos(coalesce(p_prefix, ''), '#') > 0 THEN dc_fill_pattern(p_code, p_prefix)
        WHEN coalesce(p_prefix, '') <> '' THEN
            p_prefix || '-' || regexp_replace(right(p_code, p_length), '(.{4})(?=.)', '\1-', 'g')
        WHEN length(p_code) > p_length THEN
            left(p_code, length(p_code) - p_length) || '-'
            || regexp_replace(right(p_code, p_length), '(.{4})(?=.)', '\1-', 'g')
        ELSE regexp_replace(right(p_code, p_length), '(.{4})(?=.)', '\1-', 'g')
    END
$fn$;
""",
)

#: This feature's stored functions, in the order they can be created (``dc_display``
#: calls ``dc_fill_pattern``).
FUNCTIONS = (DC_FILL_PATTERN, DC_DISPLAY)
