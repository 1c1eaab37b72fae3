/* fuzz-scrypt: the scrypt file frame of backups (src/backup/scrypt-file.h)
 * as an untrusted file gives it. Properties: no crash or sanitizer
 * report; parameters past the limits are refused at the header's parse;
 * a file that reads whole (its header MAC and its MAC match) encrypts
 * back, under the same key, salt and parameters, to the same bytes. The
 * key derivation is capped at log2 N 10 here, so that fuzzing stays fast
 * (larger ones are refused before it). */
#include "qubes-error.h"
#include "scrypt-file.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < QUBES_SCRYPT_HEADER + QUBES_SCRYPT_MAC)
        return 0;
    QubesScryptParams params;
    guint8 salt[QUBES_SCRYPT_SALT], key[QUBES_SCRYPT_KEY];
    if (!qubes_scrypt_header_parse(data, &params, salt, NULL))
        return 0;
    if (!qubes_scrypt_params_check(&params, NULL))
        abort(); /* parsed past the limits */
    if (params.log_n > 10 || (guint64)params.r * params.p > 64)
        return 0;
    if (!qubes_scrypt_derive("fuzz", 4, salt, &params, key, NULL))
        abort();
    QubesScryptDec *dec = qubes_scrypt_dec_new(data, key, NULL);
    if (!dec)
        return 0;
    gsize n = size - QUBES_SCRYPT_HEADER - QUBES_SCRYPT_MAC;
    guint8 *plain = g_malloc(n + 1);
    qubes_scrypt_dec_update(dec, data + QUBES_SCRYPT_HEADER, plain, n);
    if (qubes_scrypt_dec_finish(dec, data + size - QUBES_SCRYPT_MAC, NULL)) {
        guint8 header[QUBES_SCRYPT_HEADER], mac[QUBES_SCRYPT_MAC];
        guint8 *again = g_malloc(n + 1);
        QubesScryptEnc *enc = qubes_scrypt_enc_new(key, salt, &params, header);
        qubes_scrypt_enc_update(enc, plain, again, n);
        qubes_scrypt_enc_finish(enc, mac);
        if (memcmp(header, data, QUBES_SCRYPT_HEADER) != 0 ||
            memcmp(again, data + QUBES_SCRYPT_HEADER, n) != 0 ||
            memcmp(mac, data + size - QUBES_SCRYPT_MAC, QUBES_SCRYPT_MAC) != 0)
            abort();
        g_free(again);
    }
    g_free(plain);
    return 0;
}
