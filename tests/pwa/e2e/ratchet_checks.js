// The Double Ratchet's edges, run by tests/pwa/e2e/mail.py in the Mail page (a secure context)
// on the page's own module: X3DH without a one-time prekey, out-of-order delivery, a replay and
// a forgery refused, MAX_SKIP and MAX_SKIPPED, and two sessions started at once converging.
// One async function expression for Playwright's page.evaluate.
async () => {
    const mc = await import("/static/pwa/mail-crypto.js");
    const text = (bytes) => new TextDecoder().decode(bytes);
    const refused = async (promise) => {
        try { await promise; return false; } catch (e) { return e instanceof mc.MailCryptoError; }
    };
    const pair = async (withOneTime) => {
        const a = await mc.generateIdentity(), b = await mc.generateIdentity();
        const spk = await mc.generateSignedPreKey(b, 1);
        const [opk] = await mc.generatePreKeys(9, 1);
        const device = {deviceId: 1, registrationId: 7, signedPreKey: {keyId: 1,
            publicKey: mc.toBase64(spk.publicKey), signature: mc.toBase64(spk.signature)},
            oneTimePreKey: withOneTime ? {keyId: 9, publicKey: mc.toBase64(opk.publicKey)} : null};
        const sa = await mc.sessionInitiate({identity: a, registrationId: 5,
            bundleIdentityKey: mc.toBase64(b.publicKey), device});
        return {a, b, spk, opk: withOneTime ? opk : null, sa};
    };
    const respond = (p, pm) => mc.sessionRespond({identity: p.b, signedPreKey: p.spk,
        oneTimePreKey: p.opk, prekeyMessage: pm, deviceId: 1});
    const out = {};

    // X3DH without a one-time prekey (a device that ran out): DH1..DH3 only.
    let p = await pair(false);
    let sent = await mc.encrypt(p.sa, mc.utf8("no one-time key"));
    let pm = mc.parsePrekeyMessage(sent.content);
    let opened = await mc.decrypt(await respond(p, pm), pm.message);
    out.withoutOneTimeKey = [pm.oneTimePreKeyId, text(opened.plaintext)];

    // Out of order, a replay, a forgery; a refused message leaves the session usable.
    p = await pair(true);
    let a = p.sa;
    const three = [];
    for (const t of ["m0", "m1", "m2"]) { sent = await mc.encrypt(a, mc.utf8(t)); a = sent.session; three.push(sent); }
    pm = mc.parsePrekeyMessage(three[2].content);
    let b = await respond(p, pm);
    const order = [];
    for (const i of [2, 0, 1]) {
        opened = await mc.decrypt(b, mc.parsePrekeyMessage(three[i].content).message);
        b = opened.session; order.push(text(opened.plaintext));
    }
    out.outOfOrder = order;
    out.replayRefused = await refused(mc.decrypt(b, mc.parsePrekeyMessage(three[0].content).message));
    sent = await mc.encrypt(a, mc.utf8("m3")); a = sent.session;
    const forged = mc.parsePrekeyMessage(sent.content).message.slice();
    forged[forged.length - 1] ^= 1;
    out.forgeryRefused = await refused(mc.decrypt(b, forged));
    opened = await mc.decrypt(b, mc.parsePrekeyMessage(sent.content).message);
    b = opened.session;
    out.afterRefusals = text(opened.plaintext);

    // Skipping: at most MAX_SKIP in one chain, at most MAX_SKIPPED kept (oldest dropped).
    const reply = async () => {  // b answers, a reads: the next chain of a starts
        const r = await mc.encrypt(b, mc.utf8("ok")); b = r.session;
        a = (await mc.decrypt(a, r.content)).session;
    };
    const burst = async (count) => {  // a sends `count`, b reads only the last
        const all = [];
        for (let i = 0; i < count; i += 1) { const r = await mc.encrypt(a, mc.utf8(`n${i}`)); a = r.session; all.push(r.content); }
        return all;
    };
    await reply();
    let chain = await burst(mc.MAX_SKIP + 2);
    out.tooManySkipsRefused = await refused(mc.decrypt(b, chain[chain.length - 1]));
    opened = await mc.decrypt(b, chain[mc.MAX_SKIP]);  // skips exactly MAX_SKIP
    b = opened.session;
    out.skippedAfterOneChain = b.skipped.length;
    const firstChain = chain;
    for (let round = 0; round < 2; round += 1) {
        await reply();
        chain = await burst(mc.MAX_SKIP + 1);
        b = (await mc.decrypt(b, chain[mc.MAX_SKIP])).session;
    }
    out.skippedKept = b.skipped.length;
    out.oldestDropped = await refused(mc.decrypt(b, firstChain[0]));
    opened = await mc.decrypt(b, chain[0]);
    out.newestKept = text(opened.plaintext);

    // Both sides start a session at once: each answers the other's, and they converge.
    p = await pair(true);
    const q = {a: p.b, b: p.a, spk: await mc.generateSignedPreKey(p.a, 1), opk: null};
    const sb = await mc.sessionInitiate({identity: q.a, registrationId: 6,
        bundleIdentityKey: mc.toBase64(q.b.publicKey), device: {deviceId: 1, registrationId: 5,
        signedPreKey: {keyId: 1, publicKey: mc.toBase64(q.spk.publicKey),
            signature: mc.toBase64(q.spk.signature)}, oneTimePreKey: null}});
    const fromA = await mc.encrypt(p.sa, mc.utf8("a first")), fromB = await mc.encrypt(sb, mc.utf8("b first"));
    const pmA = mc.parsePrekeyMessage(fromA.content), pmB = mc.parsePrekeyMessage(fromB.content);
    let atB = mc.supersede((await mc.decrypt(await respond(p, pmA), pmA.message)).session, fromB.session);
    let atA = mc.supersede((await mc.decrypt(await mc.sessionRespond({identity: q.b, signedPreKey: q.spk,
        oneTimePreKey: null, prekeyMessage: pmB, deviceId: 1}), pmB.message)).session, fromA.session);
    const talk = [];
    for (let i = 0; i < 3; i += 1) {
        let r = await mc.encrypt(atA, mc.utf8(`a${i}`)); atA = r.session;
        let o = await mc.decryptWithArchive(atB, r.content); atB = o.session; talk.push(text(o.plaintext));
        r = await mc.encrypt(atB, mc.utf8(`b${i}`)); atB = r.session;
        o = await mc.decryptWithArchive(atA, r.content); atA = o.session; talk.push(text(o.plaintext));
    }
    out.simultaneous = talk;
    out.converged = mc.equal(atA.baseKey, atB.baseKey);
    return out;
}
