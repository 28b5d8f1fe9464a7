import type { KubeObject, ResourceClient } from './client.ts';
import { isConflict, isNotFound } from './errors.ts';

/** Deletes exactly this object (uid precondition); gone already or replaced is no error. */
export async function deleteIgnoringMissing<T extends KubeObject>(
  resource: ResourceClient<T>,
  obj: KubeObject,
): Promise<void> {
  try {
    await resource.delete(obj.metadata?.namespace, obj.metadata?.name ?? '', {
      preconditions: { uid: obj.metadata?.uid },
    });
  } catch (err) {
    if (!isNotFound(err) && !isConflict(err)) throw err;
  }
}
