/** Tokens signed with the tests' secret, for every test project (WebCrypto only: workerd runs them too). */
import { deviceSubject, gatewaySubject, operatorSubject, signToken } from "../schema/token.ts";
import { TEST_SECRET } from "./secret.ts";

export function deviceToken(group: string, device: string): Promise<string> {
  return signToken(TEST_SECRET, deviceSubject(group, device));
}

export function gatewayToken(group: string, gateway: string): Promise<string> {
  return signToken(TEST_SECRET, gatewaySubject(group, gateway));
}

/** An operator of `group`, or of every group with "*". */
export function operatorToken(group: string | "*"): Promise<string> {
  return signToken(TEST_SECRET, operatorSubject(group));
}
